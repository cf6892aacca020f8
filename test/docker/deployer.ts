import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { checkProvider, PreflightError } from '../../scripts/preflight';
import { OfflineApplier } from '../infra/offline-applier/applier';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import type Docker from 'dockerode';
import { ROOT } from '../helpers/synth';

/** What every Docker test needs first: an engine that answers, and (offline) the base images, built once. */
export async function readyEngine(docker: Docker, offlineImages: boolean): Promise<void> {
  await docker.ping().catch((error) => assert.fail(`a Docker engine is required for these tests (start dockerd): ${error.message}`));
  if (offlineImages) {
    const built = spawnSync('bash', ['scripts/offline-images.sh'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(built.status, 0, `offline base images: ${built.stderr}`);
  }
}

/**
 * How the Docker tests deploy a synthesized stack: with the real terraform and the
 * kreuzwerker/docker provider where it can be installed (network, or DOCKER_PROVIDER_DIR holding
 * a provider mirror), otherwise with the offline applier. Both read the same cdk.tf.json.
 */
export interface Deployer {
  readonly kind: 'terraform' | 'offline';
  apply(stackDir: string): Promise<{ outputs: Record<string, unknown> }>;
  destroy(stackDir: string): Promise<void>;
}

function terraform(stackDir: string, args: string[]): string {
  const r = spawnSync('terraform', args, {
    cwd: stackDir,
    encoding: 'utf8',
    env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    timeout: 900_000,
  });
  if (r.status !== 0) throw new Error(`terraform ${args[0]} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export function chooseDeployer(stackDir: string, log: (l: string) => void): Deployer {
  const pluginDir = process.env.DOCKER_PROVIDER_DIR;
  let provider = false;
  if (pluginDir) {
    terraform(stackDir, ['init', '-input=false', '-no-color', `-plugin-dir=${pluginDir}`]);
    provider = true;
  } else {
    try {
      checkProvider(stackDir);
      provider = true;
    } catch (error) {
      if (!(error instanceof PreflightError)) throw error;
      log('kreuzwerker/docker provider unavailable: applying with the offline applier');
    }
  }
  if (provider) {
    return {
      kind: 'terraform',
      async apply(dir) {
        terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
        const outputs = JSON.parse(terraform(dir, ['output', '-json'])) as Record<string, { value: unknown }>;
        return { outputs: Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value])) };
      },
      async destroy(dir) {
        terraform(dir, ['destroy', '-auto-approve', '-input=false', '-no-color']);
      },
    };
  }
  const applier = new OfflineApplier(join(stackDir, 'offline.tfstate.json'), undefined, log);
  return {
    kind: 'offline',
    async apply(dir) {
      const report = await applier.apply(JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')));
      return { outputs: report.outputs };
    },
    async destroy() {
      await applier.destroy();
    },
  };
}
