import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { Topology } from '../app/src/topology';

export type KeyAlgorithm = 'ecdsa' | 'rsa';

export interface CertificateRequest {
  /** Output directory (created if missing). */
  readonly dir: string;
  /** ECDSA P-256 (default: handshakes several times cheaper) or RSA-2048. */
  readonly algorithm?: KeyAlgorithm;
  /** DNS names for the server certificate's SANs. */
  readonly dnsNames: string[];
  /** IP addresses for the SANs. */
  readonly ipAddresses: string[];
  /** File names, as the topology's tls section names them. */
  readonly files: { caCert: string; serverCert: string; serverKey: string };
  /** Replace existing files. */
  readonly force?: boolean;
  readonly validDays?: number;
}

export type CertificateOutcome = 'created' | 'kept' | 'reissued';

const CA_KEY = 'ca.key';

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function newKey(path: string, algorithm: KeyAlgorithm): void {
  if (algorithm === 'ecdsa') {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
  } else {
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', path]);
  }
  chmodSync(path, 0o600);
}

/** The SANs an existing server certificate covers, or undefined when there is none. */
function existingSans(certFile: string): string[] | undefined {
  if (!existsSync(certFile)) return undefined;
  const text = openssl(['x509', '-in', certFile, '-noout', '-ext', 'subjectAltName']);
  return text
    .split('\n')
    .slice(1)
    .join(',')
    .split(',')
    .map((s) => s.trim().replace(/^IP Address:/, 'IP:'))
    .filter(Boolean);
}

const wantedSans = (req: CertificateRequest) => [...req.dnsNames.map((d) => `DNS:${d}`), ...req.ipAddresses.map((ip) => `IP:${ip}`)];

/**
 * Creates a local CA and a server certificate signed by it. Idempotent: files that already
 * cover the wanted names are kept. When only names are missing (a topology that turned on the
 * HA pair's virtual address, say), the server certificate is issued again by the same CA,
 * covering the old names and the new: whoever trusts the CA keeps trusting it. Incomplete files
 * are only replaced with `force`.
 */
export function generateCertificates(req: CertificateRequest): CertificateOutcome {
  const algorithm = req.algorithm ?? 'ecdsa';
  const paths = {
    caCert: join(req.dir, req.files.caCert),
    caKey: join(req.dir, CA_KEY),
    serverCert: join(req.dir, req.files.serverCert),
    serverKey: join(req.dir, req.files.serverKey),
  };
  const days = String(req.validDays ?? 825);
  const present = Object.values(paths).filter((p) => existsSync(p));
  if (present.length > 0 && !req.force) {
    if (present.length < 4) throw new Error(`certificates in ${req.dir} exist but are incomplete; rerun with --force to replace them`);
    const sans = existingSans(paths.serverCert) ?? [];
    const missing = wantedSans(req).filter((s) => !sans.includes(s));
    if (missing.length === 0) return 'kept';
    issueServerCertificate(paths, [...sans, ...missing], req.dnsNames[0], algorithm, days);
    return 'reissued';
  }

  mkdirSync(req.dir, { recursive: true });
  newKey(paths.caKey, algorithm);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    paths.caKey,
    '-sha256',
    '-days',
    days,
    '-subj',
    '/CN=ws-notifications local CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    paths.caCert,
  ]);
  issueServerCertificate(paths, wantedSans(req), req.dnsNames[0], algorithm, days);
  return 'created';
}

/** A new server key and certificate for `sans`, signed by the CA in `paths`. */
function issueServerCertificate(
  paths: { caCert: string; caKey: string; serverCert: string; serverKey: string },
  sans: string[],
  commonName: string | undefined,
  algorithm: KeyAlgorithm,
  days: string,
): void {
  const work = mkdtempSync(join(tmpdir(), 'ws-certs-'));
  try {
    newKey(paths.serverKey, algorithm);
    const csr = join(work, 'server.csr');
    openssl(['req', '-new', '-key', paths.serverKey, '-subj', `/CN=${commonName ?? 'localhost'}`, '-out', csr]);
    const ext = join(work, 'server.ext');
    writeFileSync(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        `keyUsage=critical,digitalSignature${algorithm === 'rsa' ? ',keyEncipherment' : ''}`,
        'extendedKeyUsage=serverAuth',
        `subjectAltName=${sans.join(',')}`,
      ].join('\n'),
    );
    openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      paths.caCert,
      '-CAkey',
      paths.caKey,
      '-CAcreateserial',
      '-CAserial',
      join(work, 'ca.srl'),
      '-days',
      days,
      '-sha256',
      '-extfile',
      ext,
      '-out',
      paths.serverCert,
    ]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The certificates a topology uses (its tls section, relative to `root` unless absolute), with
 * the names both the stack and loopback need: localhost, 127.0.0.1, the proxy's container name and,
 * with the HA pair, its virtual address.
 */
export function ensureTopologyCertificates(
  topology: Topology,
  root: string,
  options: { dir?: string; algorithm?: KeyAlgorithm; force?: boolean } = {},
): {
  outcome: CertificateOutcome;
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  ticketKeyFile: string;
  controlKeyFile: string;
} {
  const dir = resolve(root, options.dir ?? topology.tls.dir);
  const publicNames = topology.target === 'swarm' ? topology.swarm.publicNames : [];
  const outcome = generateCertificates({
    dir,
    algorithm: options.algorithm,
    force: options.force,
    // On the swarm target, also the names and addresses clients reach the nodes by.
    dnsNames: ['localhost', topology.proxy.containerName, ...publicNames.filter((n) => !isIP(n))],
    // With the HA pair, clients use the virtual address.
    ipAddresses: [
      '127.0.0.1',
      ...(topology.proxy.ha.enabled && topology.proxy.ha.virtualAddress ? [topology.proxy.ha.virtualAddress] : []),
      ...publicNames.filter((n) => isIP(n)),
    ],
    files: topology.tls,
  });
  const { caCert, serverCert, serverKey, sessionTicketKey, controlKey } = topology.tls;
  // The directory is the keys' fence on the host: no other user may enter it.
  chmodSync(dir, 0o700);
  // Kept once made, so every proxy, replica and reload share them: the ticket key in nginx's
  // 80-byte form (AES-256), read by nginx's master (root); the control key as text (it travels
  // in a header), bind-mounted into the replicas, whose unprivileged user must read it through
  // the mount, where the host's directory does not fence it: so 0644 inside the 0700 directory.
  const ticketKeyFile = ensureSecret(join(dir, sessionTicketKey), () => randomBytes(80), 0o600, options.force);
  const controlKeyFile = ensureSecret(join(dir, controlKey), () => `${randomBytes(32).toString('hex')}\n`, 0o644, options.force);
  return {
    outcome,
    dir,
    caFile: join(dir, caCert),
    certFile: join(dir, serverCert),
    keyFile: join(dir, serverKey),
    ticketKeyFile,
    controlKeyFile,
  };
}

/** A secret file, made when missing or forced, with its mode; returns its path. */
export function ensureSecret(file: string, make: () => Buffer | string, mode: number, force = false): string {
  if (!existsSync(file) || force) writeFileSync(file, make());
  chmodSync(file, mode);
  return file;
}
