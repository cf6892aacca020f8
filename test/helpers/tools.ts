import { spawnSync } from 'node:child_process';

/**
 * A command's output for a test, or a failure naming the Debian package to install when the
 * command is missing (`npm start` and `.ci/run` install them: scripts/system-packages.sh), where a
 * bare spawnSync would hand back a null stdout and crash the test on it.
 */
export function commandOutput(command: string, args: string[], debianPackage: string): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error)
    throw new Error(
      `${command} is needed by this test and could not run (${r.error.message}): apt-get install -y ${debianPackage}, or run npm start once`,
    );
  return r.stdout;
}
