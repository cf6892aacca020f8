import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { Testing, TerraformStack } from 'cdktf';
import { DockerProvider } from '@cdktf/provider-docker/lib/provider';
import { Network } from '@cdktf/provider-docker/lib/network';
import { defineTopology, OFFLINE_BASE_IMAGES, withoutAuth } from '../../app/src/topology';
import { SERVER_SERVICE, ServerService } from '../../stacks/swarm/server-service';
import { SwarmFile } from '../../stacks/swarm/swarm-files';
import { OfflineApplier } from '../infra/offline-applier/applier';
import { createSwarmLab, type SwarmLab } from '../infra/swarm-lab';
import { ROOT } from '../helpers/synth';
import { readyEngine } from '../docker/deployer';
import { scratchDir } from '../helpers/scratch';

/**
 * The swarm target's servers (stacks/swarm/server-service.ts) on the 3-node swarm made here,
 * applied by the offline applier against the manager: replicas from the topology, changed in
 * code (3 → 6 → 2), each apply converging in place; destroy leaves no service, secret or network.
 */
const IMAGE = 'ws-notifications/app:swarm-test';

function doc(replicas: number): any {
  const stack = new TerraformStack(Testing.app({ outdir: scratchDir('ws-synth-') }), 'swarm');
  new DockerProvider(stack, 'docker', {});
  const network = new Network(stack, 'network', { name: 'ws-swarm-net', driver: 'overlay', attachable: true });
  const labels = { 'ws-notifications.stack': 'swarm-test' };
  const controlKey = new SwarmFile(stack, 'control-key', {
    stem: 'ws-control-key',
    content: 'swarm-test-control-key-0123456789',
    secret: true,
    labels,
  });
  new ServerService(stack, 'servers', {
    topology: defineTopology(withoutAuth({ replicas, broker: { enabled: false } })),
    image: IMAGE,
    networkName: network.name,
    labels,
    controlKey,
  });
  return JSON.parse(Testing.synth(stack));
}

describe('the servers as a swarm service on a real 3-node swarm', { concurrency: false }, () => {
  let swarm: SwarmLab;
  let applier: OfflineApplier;
  let manager: Docker;

  before(async () => {
    // The host's engine builds the images each node gets.
    await readyEngine(new Docker(), true);
    const app = spawnSync(
      'docker',
      ['build', '-q', '-t', IMAGE, '-f', 'app/Dockerfile', '--build-arg', `NODE_IMAGE=${OFFLINE_BASE_IMAGES.node}`, '.'],
      { cwd: ROOT, encoding: 'utf8' },
    );
    assert.equal(app.status, 0, `app image: ${app.stderr}`);
    swarm = await createSwarmLab({ count: 3, images: [IMAGE] });
    manager = new Docker({ socketPath: swarm.nodes[0].host.replace(/^unix:\/\//, '') });
    applier = new OfflineApplier(join(scratchDir('ws-swarm-state-'), 'state.json'), manager);
  });

  after(async () => {
    await applier?.destroy().catch(() => undefined);
    await swarm?.teardown();
    spawnSync('docker', ['rmi', '-f', IMAGE]);
  });

  const running = async () => {
    const tasks = await manager.listTasks({ filters: { service: [SERVER_SERVICE], 'desired-state': ['running'] } });
    return tasks.filter((t: any) => t.Status.State === 'running');
  };

  it('deploys 3 replicas, healthy, spread over the nodes, each named from its slot', async () => {
    const report = await applier.apply(doc(3));
    assert.ok(report.created.some((a) => a.startsWith('docker_service.')));
    const tasks = await running();
    assert.equal(tasks.length, 3);
    assert.ok(new Set(tasks.map((t: any) => t.NodeID)).size >= 2, 'spread over nodes');
    const env: string[] = (await manager.getService(SERVER_SERVICE).inspect()).Spec.TaskTemplate.ContainerSpec.Env;
    assert.ok(env.includes('WS_REPLICA_ID=ws-server-{{.Task.Slot}}'));
  });

  it('changing replicas in code updates the service in place, and each apply converges (3 → 6 → 2)', async () => {
    const id = (await manager.getService(SERVER_SERVICE).inspect()).ID;
    for (const n of [6, 2]) {
      const report = await applier.apply(doc(n));
      assert.ok(
        report.replaced.some((a) => a.startsWith('docker_service.')),
        `updated for ${n}`,
      );
      assert.equal((await running()).length, n, `${n} running once the apply returned`);
      assert.equal((await manager.getService(SERVER_SERVICE).inspect()).ID, id, 'the same service, updated in place');
    }
  });

  it("destroy removes the service, the control key's secret and the overlay network", async () => {
    const destroyed = await applier.destroy();
    assert.deepEqual(
      destroyed.map((a) => a.split('.')[0]).sort(),
      ['docker_network', 'docker_secret', 'docker_service'],
      destroyed.join(', '),
    );
    assert.deepEqual(
      (await manager.listServices()).map((s: any) => s.Spec.Name),
      [],
    );
    assert.deepEqual(
      (await manager.listSecrets()).map((s: any) => s.Spec.Name),
      [],
    );
    const networks = (await manager.listNetworks()).map((n: any) => n.Name);
    assert.ok(!networks.includes('ws-swarm-net'), networks.join(', '));
  });
});
