import { join } from 'node:path';
import { generateCertificates, type KeyAlgorithm } from '../../certs/generate';
import { tlsSchema } from '../../app/src/topology';
import { scratchDir } from './scratch';

export interface TestCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A fresh CA and server certificate (localhost, 127.0.0.1, ws-nginx) in a temp directory. */
export function makeTestCerts(algorithm: KeyAlgorithm = 'ecdsa'): TestCerts {
  const dir = scratchDir('ws-test-certs-');
  // The topology's own file names, as the stack and the local runner use them.
  const { caCert, serverCert, serverKey } = tlsSchema.parse({});
  const files = { caCert, serverCert, serverKey };
  generateCertificates({ dir, algorithm, dnsNames: ['localhost', 'ws-nginx'], ipAddresses: ['127.0.0.1'], files });
  return { dir, caCert: join(dir, files.caCert), serverCert: join(dir, files.serverCert), serverKey: join(dir, files.serverKey) };
}
