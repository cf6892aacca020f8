import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

export type CertificateOutcome = 'created' | 'kept';

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

const wantedSans = (req: CertificateRequest) => [
  ...req.dnsNames.map((d) => `DNS:${d}`),
  ...req.ipAddresses.map((ip) => `IP:${ip}`),
];

/**
 * Creates a local CA and a server certificate signed by it. Idempotent: files that already
 * cover the wanted names are kept; files that do not are only replaced with `force`.
 */
export function generateCertificates(req: CertificateRequest): CertificateOutcome {
  const algorithm = req.algorithm ?? 'ecdsa';
  const paths = {
    caCert: join(req.dir, req.files.caCert),
    caKey: join(req.dir, CA_KEY),
    serverCert: join(req.dir, req.files.serverCert),
    serverKey: join(req.dir, req.files.serverKey),
  };
  const present = Object.values(paths).filter((p) => existsSync(p));
  if (present.length > 0 && !req.force) {
    const sans = existingSans(paths.serverCert) ?? [];
    const missing = wantedSans(req).filter((s) => !sans.includes(s));
    if (present.length === 4 && missing.length === 0) return 'kept';
    throw new Error(
      `certificates in ${req.dir} exist but ${present.length < 4 ? 'are incomplete' : `do not cover ${missing.join(', ')}`}; ` +
        'rerun with --force to replace them',
    );
  }

  mkdirSync(req.dir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'ws-certs-'));
  try {
    const days = String(req.validDays ?? 825);
    newKey(paths.caKey, algorithm);
    openssl(['req', '-x509', '-new', '-key', paths.caKey, '-sha256', '-days', days,
      '-subj', '/CN=ws-notifications local CA', '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', paths.caCert]);

    newKey(paths.serverKey, algorithm);
    const csr = join(work, 'server.csr');
    openssl(['req', '-new', '-key', paths.serverKey, '-subj', `/CN=${req.dnsNames[0] ?? 'localhost'}`, '-out', csr]);
    const ext = join(work, 'server.ext');
    writeFileSync(ext, [
      'basicConstraints=critical,CA:FALSE',
      `keyUsage=critical,digitalSignature${algorithm === 'rsa' ? ',keyEncipherment' : ''}`,
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${wantedSans(req).join(',')}`,
    ].join('\n'));
    openssl(['x509', '-req', '-in', csr, '-CA', paths.caCert, '-CAkey', paths.caKey, '-CAcreateserial',
      '-CAserial', join(work, 'ca.srl'), '-days', days, '-sha256', '-extfile', ext, '-out', paths.serverCert]);
    return 'created';
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The certificates a topology uses (its tls section, relative to `root` unless absolute), with
 * the names both the stack and loopback need: localhost, 127.0.0.1 and the proxy's container name.
 */
export function ensureTopologyCertificates(
  topology: Topology,
  root: string,
  options: { dir?: string; algorithm?: KeyAlgorithm; force?: boolean } = {},
): { outcome: CertificateOutcome; dir: string; caFile: string; certFile: string; keyFile: string } {
  const dir = resolve(root, options.dir ?? topology.tls.dir);
  const outcome = generateCertificates({
    dir,
    algorithm: options.algorithm,
    force: options.force,
    dnsNames: ['localhost', topology.proxy.containerName],
    ipAddresses: ['127.0.0.1'],
    files: topology.tls,
  });
  const { caCert, serverCert, serverKey } = topology.tls;
  return { outcome, dir, caFile: join(dir, caCert), certFile: join(dir, serverCert), keyFile: join(dir, serverKey) };
}
