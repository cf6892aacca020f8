import { connect } from 'node:tls';
import { median } from './stats';

export const IDENTITY_CALLS = 2_000;
export const IDENTITY_ROUNDS = 3;

/** µs per call of each form of getPeerCertificate, on one connection: the leaf alone, and with its issuers. */
export interface IdentityCheckCost {
  leafUs: number;
  withIssuersUs: number;
}

/**
 * What Node's TLS client spends on the certificate it hands to `checkServerIdentity` after each
 * full handshake: `getPeerCertificate(true)` (what Node asks for) against `(false)` (what the
 * load client answers with, client/virtual-user.ts). One connection to `url`, IDENTITY_CALLS calls
 * of each, alternating, the median of IDENTITY_ROUNDS.
 */
export async function identityCheckCost(url: string, ca: Buffer): Promise<IdentityCheckCost> {
  const u = new URL(url);
  const socket = connect({ host: u.hostname, port: Number(u.port) || 443, servername: 'localhost', ca });
  try {
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const time = (detailed: boolean) => {
      const started = process.hrtime.bigint();
      for (let i = 0; i < IDENTITY_CALLS; i++) socket.getPeerCertificate(detailed);
      return Number(process.hrtime.bigint() - started) / 1_000 / IDENTITY_CALLS;
    };
    const leaf: number[] = [];
    const withIssuers: number[] = [];
    for (let r = 0; r < IDENTITY_ROUNDS; r++) {
      leaf.push(time(false));
      withIssuers.push(time(true));
    }
    return { leafUs: median(leaf), withIssuersUs: median(withIssuers) };
  } finally {
    socket.destroy();
  }
}
