/** `npm run certs`: a local CA and a server certificate for the proxy, in the topology's tls.dir. */
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { defineTopology } from '../app/src/topology';
import { ensureTopologyCertificates, type KeyAlgorithm } from './generate';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';

const program = new Command('certs')
  .description('Create a local CA and a server certificate (SANs: localhost, 127.0.0.1 and the proxy container name).')
  .addOption(new Option('--algorithm <alg>', 'key algorithm').choices(['ecdsa', 'rsa']).default('ecdsa'))
  .option('--dir <dir>', 'output directory (default: the topology tls.dir)')
  .option('--force', 'replace existing certificates', false)
  .parse();

runEntryPoint(
  () => {
    const opts = program.opts<{ algorithm: KeyAlgorithm; dir?: string; force: boolean }>();
    const topology = defineTopology({}, {});
    const { outcome, dir } = ensureTopologyCertificates(topology, resolve(__dirname, '..'), opts);
    console.log(
      {
        created: `created ${opts.algorithm} CA and server certificate in ${dir}`,
        reissued: `server certificate in ${dir} issued again by the same CA, covering the new names`,
        kept: `certificates in ${dir} already cover the needed names; kept`,
      }[outcome],
    );
    return EXIT.ok;
  },
  // openssl failing, an unwritable directory: the message says it.
  { expected: [Error] },
);
