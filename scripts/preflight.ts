import { spawnSync } from 'node:child_process';

/** A check that failed, with what the user should do about it. */
export class PreflightError extends Error {
  constructor(
    readonly what: string,
    readonly fix: string,
  ) {
    super(`${what}\n\n${fix}`);
    this.name = 'PreflightError';
  }
}

function run(cmd: string, args: string[], cwd?: string, timeoutMs = 120_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  return {
    ok: r.status === 0,
    missing: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT',
    out: `${r.stdout ?? ''}${r.stderr ?? ''}`,
  };
}

/** The Docker engine answers (the provider talks to the same one, through DOCKER_HOST or the default socket). */
export function checkDocker(): string {
  const r = run('docker', ['version', '--format', '{{.Server.Version}}'], undefined, 20_000);
  if (r.missing) {
    throw new PreflightError(
      'The docker command is not installed.',
      'Install Docker (https://docs.docker.com/engine/install/), or run the same system without Docker: npm start',
    );
  }
  if (!r.ok) {
    throw new PreflightError(
      `The Docker engine is not reachable:\n  ${r.out.trim().split('\n').slice(-1)[0]}`,
      'Start Docker (or set DOCKER_HOST to a reachable engine) and try again.\nWithout Docker, `npm start` runs the same system as local processes with real nginx.',
    );
  }
  return r.out.trim();
}

export function checkTerraform(): string {
  const r = run('terraform', ['version'], undefined, 20_000);
  if (r.missing || !r.ok) {
    throw new PreflightError(
      'terraform is not on PATH (cdktf drives it).',
      'Install Terraform ≥ 1.5 (https://developer.hashicorp.com/terraform/install) or OpenTofu, then try again.',
    );
  }
  return r.out.split('\n')[0];
}

/**
 * `terraform init` in the synthesized stack: it validates the configuration and installs the
 * kreuzwerker/docker provider. An offline machine fails here with a clear message instead of
 * deep inside cdktf.
 */
export function checkProvider(stackDir: string): void {
  const r = run('terraform', ['init', '-input=false', '-no-color'], stackDir, 300_000);
  if (r.ok) return;
  if (/Failed to query available provider packages|Failed to install provider|could not connect to registry/.test(r.out)) {
    throw new PreflightError(
      'The kreuzwerker/docker provider could not be installed (the Terraform registry is not reachable from here).',
      [
        'Give terraform a local copy of the provider, then try again:',
        '  - a filesystem mirror: set TF_CLI_CONFIG_FILE to a file with',
        '      provider_installation { filesystem_mirror { path = "/path/to/mirror" } }',
        '    where the mirror holds registry.terraform.io/kreuzwerker/docker/<version>/<os_arch>/...',
        '  - or TF_PLUGIN_CACHE_DIR pointing at a cache that already has it.',
        'Or run the same system without Docker: npm start',
      ].join('\n'),
    );
  }
  throw new PreflightError(
    `terraform init failed in ${stackDir}:\n${r.out.trim()}`,
    'Fix the error above (run `npm run synth` to regenerate the stack) and try again.',
  );
}
