import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { App } from 'cdktf';
import { runLoad } from '../../app/src/client/coordinator';
import { buildReport } from '../../app/src/client/report';
import { defineTopology, proxyNames, withoutAuth } from '../../app/src/topology';
import { WsNotificationsStack } from '../../stacks/ws-notifications-stack';
import { ensureTopologyCertificates } from '../../certs/generate';
import { ensureServiceSecrets } from '../../certs/secrets';
import { projectPaths } from '../../stacks/paths';
import { VRRP_MASTER_METRIC } from '../../keepalived/render';
import { prometheusQuery } from '../helpers/prometheus';
import { retrying } from '../helpers/server';
import { proxyFaultAt } from '../helpers/proxy-fault';
import { ROOT } from '../helpers/synth';
import { chooseDeployer, readyEngine, type Deployer } from './deployer';
import { dockerProxy } from '../../control/access';
import { nginxWorkers } from '../../control/reload';
import { PROXY_PATHS } from '../../stacks/nginx-proxy';
import { scratchDir } from '../helpers/scratch';

const exec = (container: string, cmd: string) => spawnSync('docker', ['exec', container, 'sh', '-c', cmd], { encoding: 'utf8' }).stdout;

/**
 * The HA pair on a real Docker engine: two proxies (nginx + keepalived in each container) on a
 * network from the benchmarking range, the load job and the exporter at the virtual address.
 * Under load from this machine (which reaches the network's bridge), the MASTER's container is
 * killed; the backup must answer within 5 s, and nothing owed may be missing.
 */
const docker = new Docker();
const VIP = '198.18.1.200';
const PROMETHEUS = 'http://127.0.0.1:19090';
const offlineImages = process.env.BASE_IMAGES !== 'public';
const outdir = scratchDir('ws-docker-ha-');
const logLines: string[] = [];

const topologyWith = (replicas: number) =>
  defineTopology(
    withoutAuth({
      replicas,
      network: { subnet: '198.18.1.0/24', ipRange: '198.18.1.0/25' },
      proxy: { ha: { enabled: true, virtualAddress: VIP }, shutdownTimeoutMs: 20_000, reload: { shedWindowMs: 5_000, marginMs: 2_000 } },
      monitoring: { prometheusPort: 19090, grafanaPort: 13000, scrapeIntervalMs: 1000, evaluationIntervalMs: 1000 },
      load: {
        stages: [{ connections: 200, rampRate: 200, holdMs: 2000 }],
        thresholds: ['errors==0', 'closes.unexpected==0'],
        maxDurationMs: 60_000,
      },
    }),
    { BASE_IMAGES: offlineImages ? 'offline' : 'public' },
  );
const topology = topologyWith(3);
const stateOf = (proxy: string) => {
  const file = join(projectPaths(ROOT, topology).deployDir, 'ha', proxy, 'state', 'state');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
};

/** Synthesizes into the same directory every time, so the deployment's state carries over. */
function synth(replicas: number): string {
  const app = new App({ outdir, skipValidation: false });
  new WsNotificationsStack(app, topology.name, {
    topology: topologyWith(replicas),
    root: ROOT,
    loadUser: `${process.getuid!()}:${process.getgid!()}`,
  });
  app.synth();
  return join(outdir, 'stacks', topology.name);
}

describe('the HA pair on a real Docker engine', { concurrency: false }, () => {
  let deployer: Deployer;
  let stackDir: string;

  before(async () => {
    await readyEngine(docker, offlineImages);
    // The certificate must cover the virtual address (issued again by the same CA if it does not).
    ensureTopologyCertificates(topology, ROOT);
    ensureServiceSecrets(topology, projectPaths(ROOT, topology).secretsDir);
    stackDir = synth(3);
    deployer = chooseDeployer(stackDir, (l) => logLines.push(l));
    for (const c of await docker.listContainers({ all: true, filters: { label: [`ws-notifications.stack=${topology.name}`] } }))
      await docker.getContainer(c.Id).remove({ force: true });
    await docker
      .getNetwork(topology.network.name)
      .remove()
      .catch(() => undefined);
  });

  after(async () => {
    await deployer?.destroy(stackDir).catch(() => undefined);
    if (process.env.DOCKER_TEST_VERBOSE) console.log(logLines.join('\n'));
  });

  it('deploys the pair: one MASTER, the load job passes through the virtual address, Prometheus sees which proxy holds it', async () => {
    const { outputs } = await deployer.apply(stackDir);
    assert.equal(outputs.load_exit_code, 0, 'the load job (connecting to the virtual address) passed');
    assert.equal(outputs.endpoint, `wss://${VIP}${topology.server.path}`);
    const states = proxyNames(topology.proxy).map(stateOf);
    assert.deepEqual([...states].sort(), ['BACKUP', 'MASTER'], `keepalived states: ${states}`);
    await retrying(async () => {
      const rows = await prometheusQuery(PROMETHEUS, VRRP_MASTER_METRIC);
      assert.deepEqual(
        rows.map((r) => [r.metric.proxy, r.value[1]]).sort(),
        proxyNames(topology.proxy)
          .map((p) => [p, stateOf(p) === 'MASTER' ? '1' : '0'])
          .sort(),
      );
    }, 30_000);
  });

  it("kill the MASTER's container under load: the backup answers within 5 s, every client reconnects, nothing owed is missing", async () => {
    const master = proxyNames(topology.proxy).find((p) => stateOf(p) === 'MASTER')!;
    const backup = proxyNames(topology.proxy).find((p) => p !== master)!;
    const profile = {
      ...topology.load,
      stages: [{ connections: 600, rampRate: 200, holdMs: 22_000 }],
      topics: 10,
      publishRate: 10,
      maxDurationMs: 90_000,
    };
    const startedAt = new Date();
    const fault = proxyFaultAt({
      id: 'kill-proxy@8s',
      atSeconds: 8,
      address: VIP,
      from: master,
      act: () => docker.getContainer(master).kill(),
      to: () => backup,
    });
    const result = await runLoad({
      url: `wss://${VIP}${topology.server.path}`,
      ca: readFileSync(join(ROOT, topology.tls.dir, topology.tls.caCert)),
      insecure: false,
      workers: 1,
      profile,
      ...fault.options,
    });
    await fault.done();
    const r = buildReport({ ...result, target: VIP, startedAt, profile: { ...profile, stages: profile.stages } as typeof topology.load });
    const f = r.failover!;
    assert.ok(f.seconds !== undefined && f.seconds <= 5, `failover ${f.seconds} s`);
    assert.ok(f.dropped > 0 && f.reconnected === f.dropped, `${f.dropped} dropped, ${f.reconnected} reconnected`);
    assert.equal(r.connections.failed, 0, JSON.stringify(r.errors));
    assert.deepEqual(r.closesUnexpected, {});
    assert.ok(r.delivery.accounted && r.delivery.expected > 0);
    assert.equal(r.delivery.lost, 0);
    assert.equal(stateOf(backup), 'MASTER', 'the backup holds the address');
    console.log(
      `docker failover: ${f.seconds} s, ${f.dropped} dropped, ${f.refused} handshakes refused meanwhile, all back after ${f.allReconnectedSeconds} s`,
    );
  });

  it('scaling the replicas in code reloads both proxies (new nginx workers) without replacing either', async () => {
    // The killed proxy stays down (killed by hand); started again as an operator would, it comes back BACKUP (nopreempt).
    for (const p of proxyNames(topology.proxy))
      if (!(await docker.getContainer(p).inspect()).State.Running) await docker.getContainer(p).start();
    await retrying(
      async () =>
        assert.deepEqual(
          proxyNames(topology.proxy).map(stateOf).sort(),
          ['BACKUP', 'MASTER'],
          proxyNames(topology.proxy)
            .map((p) => spawnSync('docker', ['logs', '--tail', '15', p], { encoding: 'utf8' }).stderr)
            .join('\n'),
        ),
      30_000,
    );
    const before = await Promise.all(
      proxyNames(topology.proxy).map(async (p) => ({
        id: (await docker.getContainer(p).inspect()).Id,
        workers: await nginxWorkers(dockerProxy({ container: p, pidFile: PROXY_PATHS.pid, configFile: PROXY_PATHS.config })),
      })),
    );
    const { outputs } = await deployer.apply(synth(4));
    assert.equal(outputs.load_exit_code, 0);
    for (const [i, p] of proxyNames(topology.proxy).entries()) {
      const after = await docker.getContainer(p).inspect();
      assert.equal(after.Id, before[i].id, `${p} was not replaced`);
      const workers = await nginxWorkers(dockerProxy({ container: p, pidFile: PROXY_PATHS.pid, configFile: PROXY_PATHS.config }));
      assert.ok(
        workers.current.every((w) => !before[i].workers.current.includes(w)),
        `${p} reloaded: workers ${before[i].workers.current} → ${workers.current}`,
      );
      assert.match(exec(p, `cat ${PROXY_PATHS.config}`), /ws-server-3:8080/);
      assert.equal(
        exec(p, 'test -d "/proc/$(cat /run/keepalived.pid)" && echo running').trim(),
        'running',
        `${p}: keepalived runs (after a restart too)`,
      );
    }
  });

  it('destroy removes the pair and its network', async () => {
    await deployer.destroy(stackDir);
    const left = await docker.listContainers({ all: true, filters: { label: [`ws-notifications.stack=${topology.name}`] } });
    assert.deepEqual(
      left.map((c) => c.Names[0]),
      [],
    );
    await assert.rejects(docker.getNetwork(topology.network.name).inspect());
  });
});
