import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { OFFLINE_BASE_IMAGES } from '../../app/src/topology';
import { createSwarmLab, type SwarmLab } from '../infra/swarm-lab';
import { retrying } from '../helpers/server';
import { ROOT } from '../helpers/synth';
import { readyEngine } from '../docker/deployer';

/**
 * The multi-node swarm the swarm target is tested on: three dockerd on this machine, each in a
 * network namespace of its own, one swarm. Real daemons, real overlay network.
 */
describe('a 3-node Docker Swarm on this machine (test/infra/swarm-lab.ts)', { concurrency: false }, () => {
  let swarm: SwarmLab;
  const image = OFFLINE_BASE_IMAGES.debian;

  before(async () => {
    // The host's engine builds the images each node gets.
    await readyEngine(new Docker(), true);
    swarm = await createSwarmLab({ count: 3, images: [image] });
  });

  after(async () => {
    await swarm?.teardown();
  });

  it('has one manager and two workers, all ready', () => {
    const [manager] = swarm.nodes;
    const rows = swarm.docker(manager, ['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.ManagerStatus}}']).trim().split('\n');
    assert.deepEqual(rows.map((r) => r.split(' ')[0]).sort(), ['swarm-0', 'swarm-1', 'swarm-2'], rows.join('\n'));
    assert.ok(
      rows.every((r) => / Ready/.test(r)),
      rows.join('\n'),
    );
    assert.equal(rows.filter((r) => /Leader/.test(r)).length, 1);
  });

  it('spreads a service over the nodes, and the overlay carries traffic between its tasks', async () => {
    const [manager] = swarm.nodes;
    swarm.docker(manager, ['network', 'create', '--driver', 'overlay', '--attachable', 'lab-net']);
    swarm.docker(manager, [
      'service',
      'create',
      '--detach',
      '--name',
      'lab-sleep',
      '--replicas',
      '4',
      '--network',
      'lab-net',
      image,
      'sleep',
      'infinity',
    ]);
    const nodesWithTasks = await retrying(async () => {
      const rows = swarm
        .docker(manager, ['service', 'ps', 'lab-sleep', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}'])
        .trim()
        .split('\n');
      assert.equal(rows.filter((r) => / Running/.test(r)).length, 4, rows.join('\n'));
      return new Set(rows.map((r) => r.split(' ')[0]));
    }, 60_000);
    assert.ok(nodesWithTasks.size >= 2, `tasks on ${[...nodesWithTasks].join(', ')}`);
    // A task on one node reaches a task on another by its overlay address (bash's /dev/tcp to a port nobody listens on: refused = reached).
    const taskOn = (node: (typeof swarm.nodes)[number]) =>
      swarm.docker(node, ['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=lab-sleep']).trim().split('\n')[0];
    const [a, b] = swarm.nodes.filter((n) => taskOn(n));
    const addressOfB = swarm.docker(b, ['inspect', '-f', '{{(index .NetworkSettings.Networks "lab-net").IPAddress}}', taskOn(b)]).trim();
    const probe = spawnSync(
      'docker',
      ['-H', a.host, 'exec', taskOn(a), 'bash', '-c', `timeout 3 bash -c '</dev/tcp/${addressOfB}/9' 2>&1; echo exit=$?`],
      { encoding: 'utf8' },
    );
    assert.match(probe.stdout, /Connection refused/, `from ${a.name} to ${addressOfB} on ${b.name}: ${probe.stdout}${probe.stderr}`);
    swarm.docker(manager, ['service', 'rm', 'lab-sleep']);
  });

  it('teardown leaves no daemon, container, directory, namespace or bridge behind', async () => {
    const pids = swarm.nodes.map((n) => n.dockerd.child.pid!);
    // A container still running: a stopped dockerd leaves its shim and the container behind.
    swarm.docker(swarm.nodes[1], ['run', '-d', '--name', 'lab-left-running', image, 'sleep', 'infinity']);
    await swarm.teardown();
    assert.ok(
      pids.every((pid) => !existsSync(`/proc/${pid}`)),
      'daemons stopped',
    );
    const leftovers = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(`/run/ws-swarm-lab/${process.pid}/`);
        } catch {
          return false;
        }
      });
    assert.deepEqual(leftovers, [], 'no shim or container of the lab left');
    assert.ok(!existsSync(`/var/lib/ws-swarm-lab/${process.pid}`) && !existsSync(`/run/ws-swarm-lab/${process.pid}`));
    assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`wsl-${process.pid}-`));
  });

  it('a lab whose creator was killed (SIGKILL) is removed by the next one', async () => {
    const script = `require('tsx/cjs'); const { createSwarmLab } = require('${ROOT}/test/infra/swarm-lab.ts'); createSwarmLab({ count: 1 }).then(() => console.log('ready'));`;
    const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`the creator exited (${code}) before its lab was up`)));
    });
    const leftover = () =>
      spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`wsl-${child.pid}-`) ||
      existsSync(`/var/lib/ws-swarm-lab/${child.pid}`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(leftover(), 'the killed run left its lab (so the check below can fail)');
    const next = await createSwarmLab({ count: 1 });
    await next.teardown();
    assert.ok(!leftover(), 'removed by the next lab');
  });
});
