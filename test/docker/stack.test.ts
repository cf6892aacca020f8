import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { App } from 'cdktf';
import { runLoad, type Progress } from '../../app/src/client/coordinator';
import { defineTopology, withoutAuth, type TopologyInput } from '../../app/src/topology';
import { DEFAULT_STAGE } from '../../app/src/shared/profile';
import { WsNotificationsStack } from '../../stacks/ws-notifications-stack';
import { ensureTopologyCertificates } from '../../certs/generate';
import { eventually, retrying, TestClient } from '../helpers/server';
import { prometheusQuery } from '../helpers/prometheus';
import { ROOT } from '../helpers/synth';
import { chooseDeployer, readyEngine, type Deployer } from './deployer';
import { dockerProxy, dockerReplica } from '../../control/access';
import { nginxWorkers } from '../../control/reload';
import { CONTROL_PATHS, type ConnectionsReport } from '../../app/src/shared/control';
import { PROXY_PATHS } from '../../stacks/nginx-proxy';
import { scratchDir } from '../helpers/scratch';
import { ensureServiceSecrets, serviceSecretFiles } from '../../certs/secrets';
import { installPage } from '../../web/build';
import { httpsRequest } from '../helpers/https';
import { CENTRIFUGE_PATH } from '../../app/src/shared/centrifuge';
import { projectPaths } from '../../stacks/paths';
import { BROKER_USERS } from '../../components/broker-auth';
import { BROKER_PATHS } from '../../stacks/broker';
import { DEV_IDP, DEV_IDP_ISSUER } from '../../app/src/topology';
import { launchChromium, servedKeyPin, signInOnPage, topicBadge } from '../helpers/browser';
import { CloseCode } from '../../app/src/shared/protocol';

/**
 * The synthesized stack on a real Docker engine: deploy, scale in code under load, destroy, and
 * fail clearly. Public ports 18443/18080 keep clear of anything on 443/80.
 */
const docker = new Docker();
const HTTPS = 18443;
const PROMETHEUS = 'http://127.0.0.1:19090';
const REPORT = join(ROOT, 'reports', 'load-report.json');
const offlineImages = process.env.BASE_IMAGES !== 'public';
const outdir = scratchDir('ws-docker-test-');
const logLines: string[] = [];
const log = (line: string) => logLines.push(line);

/**
 * nginx's deadline for old workers is short here (20 s), so the scaling test can observe past it;
 * the replicas close the retired workers' connections from 13 s after a reload, over 5 s.
 */
const PROXY = { httpsPort: HTTPS, httpPort: 18080, shutdownTimeoutMs: 20_000, reload: { shedWindowMs: 5_000, marginMs: 2_000 } };

const LOAD = {
  // Long enough that a second or two of start-up lag in the job cannot decide its verdict.
  stages: [{ connections: 300, rampRate: DEFAULT_STAGE.rampRate, holdMs: 10_000 }],
  senderFraction: 0.2,
  messageRate: 2,
  thresholds: ['errors==0', 'closes.unexpected==0'],
  maxDurationMs: 90_000,
};

/** Auth off (a trusted network) unless `extra` names an auth section: the jwt deploy below does. */
function topologyFor(replicas: number, extra: Partial<TopologyInput> = {}) {
  const input: Partial<TopologyInput> = {
    replicas,
    proxy: PROXY,
    // Grafana is on only with public images (BASE_IMAGES=public): Debian has no package for it.
    monitoring: { prometheusPort: 19090, grafanaPort: 13000, scrapeIntervalMs: 1000, evaluationIntervalMs: 1000 },
    load: LOAD,
    ...extra,
  };
  return defineTopology(extra.auth ? input : withoutAuth(input), { BASE_IMAGES: offlineImages ? 'offline' : 'public' });
}

/** Synthesizes into the same directory every time, so the deployment's state carries over. */
function synth(replicas: number, extra: Partial<TopologyInput> = {}, mutate?: (doc: any) => void): string {
  const topology = topologyFor(replicas, extra);
  const app = new App({ outdir, skipValidation: false });
  new WsNotificationsStack(app, topology.name, { topology, root: ROOT, loadUser: `${process.getuid!()}:${process.getgid!()}` });
  app.synth();
  const stackDir = join(outdir, 'stacks', topology.name);
  if (mutate) {
    const file = join(stackDir, 'cdk.tf.json');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    mutate(doc);
    writeFileSync(file, JSON.stringify(doc, null, 2));
  }
  return stackDir;
}

async function running(): Promise<Map<string, Docker.ContainerInfo>> {
  const list = await docker.listContainers({ all: true, filters: { label: ['ws-notifications.stack=ws-notifications'] } });
  return new Map(list.map((c) => [c.Names[0].slice(1), c]));
}

/** An instant query against the deployed Prometheus (published on 127.0.0.1). */
const promQuery = (expr: string) => prometheusQuery(PROMETHEUS, expr);

/** Resolves once Prometheus scrapes exactly these replicas, all up (after a config reload). */
async function prometheusSees(replicas: string[]): Promise<void> {
  await retrying(async () => {
    const rows = await promQuery('up{job="ws-server"}');
    assert.deepEqual(
      rows.map((r) => [r.metric.replica, r.value[1]]).sort(),
      replicas.map((r) => [r, '1']).sort(),
      `Prometheus scraping ${replicas.join(', ')}`,
    );
  }, 30_000);
}

const exec = (container: string, cmd: string) => spawnSync('docker', ['exec', container, 'sh', '-c', cmd], { encoding: 'utf8' }).stdout;

/** Open connections per replica, from each replica's control endpoint. */
async function spread(replicas: number): Promise<Record<string, number>> {
  const names = Array.from({ length: replicas }, (_, i) => `ws-server-${i}`);
  const reports = await Promise.all(names.map((n) => dockerReplica(n, 8080).request<ConnectionsReport>('GET', CONTROL_PATHS.connections)));
  return Object.fromEntries(reports.map((r) => [r.replica, r.connections]));
}
const BROKER_VOLUME = 'ws-nats-data';

/** The broker's stream as its monitoring endpoint (published on 127.0.0.1) reports it. */
async function brokerStream(): Promise<{ created: string; messages: number }> {
  const { broker } = topologyFor(3);
  const jsz = (await (await fetch(`http://127.0.0.1:${broker.monitoringPort}/jsz?streams=true`)).json()) as any;
  const stream = jsz.account_details?.flatMap((a: any) => a.stream_detail ?? []).find((s: any) => s.name === broker.stream);
  assert.ok(stream, `stream ${broker.stream} in /jsz`);
  return { created: stream.created, messages: stream.state.messages };
}

/**
 * What nats-server answers a client that connects from the service network (inside ws-server-0)
 * with these credentials: the raw protocol, CONNECT then PING; "PONG" when let in.
 */
function natsAnswer(credentials: { user: string; pass: string } | Record<string, never>): string {
  const script = `const s=require('net').connect(${BROKER_PATHS.clientPort},'ws-nats');let b='';s.on('data',d=>{b+=d;if(/PONG|-ERR/.test(b)){console.log(b.split('\\r\\n').filter(l=>/PONG|-ERR/.test(l)).join(' '));s.destroy()}});s.write('CONNECT '+JSON.stringify(${JSON.stringify({ verbose: false, ...credentials })})+'\\r\\nPING\\r\\n');setTimeout(()=>console.log('timeout'),5000).unref()`;
  return spawnSync('docker', ['exec', 'ws-server-0', 'node', '-e', script], { encoding: 'utf8', timeout: 15_000 }).stdout.trim();
}

const retiringWorkers = async () =>
  (await nginxWorkers(dockerProxy({ container: 'ws-nginx', pidFile: PROXY_PATHS.pid, configFile: PROXY_PATHS.config }))).retiring;

describe('the stack on a real Docker engine', { concurrency: false }, () => {
  let deployer: Deployer;
  let stackDir: string;

  before(async () => {
    await readyEngine(docker, offlineImages);
    ensureTopologyCertificates(topologyFor(3), ROOT);
    ensureServiceSecrets(topologyFor(3), projectPaths(ROOT, topologyFor(3)).secretsDir);
    installPage(projectPaths(ROOT, topologyFor(3)).pageDir);
    stackDir = synth(3);
    deployer = chooseDeployer(stackDir, log);
    // Leftovers of an interrupted earlier run would collide with the names.
    for (const c of (await running()).values()) await docker.getContainer(c.Id).remove({ force: true });
    await docker
      .getNetwork('ws-notifications')
      .remove()
      .catch(() => undefined);
    await docker
      .getVolume(BROKER_VOLUME)
      .remove()
      .catch(() => undefined);
  });

  after(async () => {
    await deployer?.destroy(stackDir).catch(() => undefined);
    if (process.env.DOCKER_TEST_VERBOSE) console.log(logLines.join('\n'));
  });

  it('deploys 3 replicas; the load job passes over CA-verified WSS with connections on every replica', async () => {
    rmSync(REPORT, { force: true });
    const { outputs } = await deployer.apply(stackDir);
    assert.deepEqual(outputs.replicas, ['ws-server-0', 'ws-server-1', 'ws-server-2']);
    assert.equal(outputs.load_exit_code, 0);
    const containers = await running();
    for (const name of ['ws-nginx', 'ws-server-0', 'ws-server-1', 'ws-server-2']) {
      const c = containers.get(name);
      assert.ok(c, `${name} exists`);
      assert.equal(c.State, 'running', `${name} is ${c.State}`);
      assert.ok(Object.keys(c.NetworkSettings.Networks).includes('ws-notifications'), `${name} on the network`);
    }
    assert.equal(containers.get('ws-load-client')?.State, 'exited');
    const report = JSON.parse(readFileSync(REPORT, 'utf8'));
    assert.deepEqual(Object.keys(report.connections.perReplica).sort(), ['ws-server-0', 'ws-server-1', 'ws-server-2']);
    assert.equal(report.connections.opened, 300);
    assert.equal(report.connections.failed, 0);
    assert.deepEqual(report.closesUnexpected, {});
    assert.equal(report.passed, true);
    // Through the broker: everything stored reached every subscriber of its topic, whatever replica it was on.
    assert.equal(containers.get('ws-nats')?.State, 'running');
    assert.ok(report.delivery.accounted && report.delivery.published > 0, JSON.stringify(report.delivery));
    assert.equal(report.delivery.lost, 0, JSON.stringify(report.delivery));
    assert.ok(report.delivery.crossReplica > 0, 'notifications crossed replicas');
    // The broker is closed to strangers: the replicas' user is let in, nobody without a password.
    const secrets = serviceSecretFiles(projectPaths(ROOT, topologyFor(3)).secretsDir);
    assert.match(natsAnswer({}), /-ERR 'Authorization Violation'/);
    assert.match(natsAnswer({ user: BROKER_USERS.replica, pass: 'wrong' }), /-ERR 'Authorization Violation'/);
    assert.equal(natsAnswer({ user: BROKER_USERS.replica, pass: readFileSync(secrets.broker.replica, 'utf8').trim() }), 'PONG');

    // One publication on one replica, delivered on all three.
    const { tls } = topologyFor(3);
    const ca = readFileSync(join(ROOT, tls.dir, tls.caCert));
    const clients: TestClient[] = [];
    const byReplica = new Map<string, TestClient>();
    while (byReplica.size < 3 && clients.length < 30) {
      const c = await TestClient.open(`wss://localhost:${HTTPS}/ws-notifications`, { ca });
      clients.push(c);
      const { replica } = await c.next('hello');
      if (!byReplica.has(replica)) byReplica.set(replica, c);
    }
    assert.equal(byReplica.size, 3, 'clients on every replica');
    for (const c of byReplica.values()) {
      c.send({ type: 'subscribe', topic: 'docker-test' });
      await c.next('subscribed');
    }
    const [publisher] = byReplica.values();
    publisher.send({ type: 'publish', topic: 'docker-test', data: 'to all' });
    const { offset } = await publisher.next('published');
    for (const [replica, c] of byReplica) {
      const n = await c.next('notification');
      assert.deepEqual([n.data, n.offset], ['to all', offset], `delivered on ${replica}`);
    }

    // The notification page, from the files the deploy installed, and its config from the topology.
    const page = await httpsRequest(`https://localhost:${HTTPS}/`, ca);
    assert.deepEqual([page.status, page.type], [200, 'text/html; charset=utf-8']);
    assert.match(page.body, /<script src="app.js">/);
    assert.equal((await httpsRequest(`https://localhost:${HTTPS}/app.js`, ca)).status, 200);
    const config = JSON.parse((await httpsRequest(`https://localhost:${HTTPS}/config.json`, ca)).body);
    assert.equal(config.centrifugePath, CENTRIFUGE_PATH);
    for (const c of clients) c.close();

    // Monitoring: Prometheus scraped the replicas, the exporter and the load job while it ran.
    for (const name of ['ws-prometheus', 'ws-nginx-exporter']) assert.equal(containers.get(name)?.State, 'running', name);
    assert.equal(outputs.prometheus_url, PROMETHEUS);
    await prometheusSees(['ws-server-0', 'ws-server-1', 'ws-server-2']);
    const [nginxUp] = await promQuery('nginx_up');
    assert.equal(nginxUp?.value[1], '1', 'the exporter reads stub_status through the network');
    const [clientPeak] = await promQuery('max_over_time(load_connections_open[10m])');
    assert.equal(Number(clientPeak?.value[1]), 300, 'the load job was scraped during its run');
    const [serverPeak] = await promQuery('max_over_time(sum(ws_connections_active)[10m:1s])');
    assert.equal(Number(serverPeak?.value[1]), 300, 'the replicas reported the connections the client held');
    console.log(
      `deploy (${deployer.kind}): 300 connections over WSS, per replica ${JSON.stringify(report.connections.perReplica)}, rtt p99 ${report.latency.rtt.p99} ms`,
    );
  });

  it('a plain reload of the proxy (docker kill -s HUP) is announced by the follower beside nginx', async (t) => {
    const { tls } = topologyFor(3);
    const ca = readFileSync(join(ROOT, tls.dir, tls.caCert));
    const clients = await Promise.all(
      Array.from({ length: 6 }, () => TestClient.open(`wss://localhost:${HTTPS}/ws-notifications`, { ca })),
    );
    t.after(() => clients.forEach((c) => c.close()));
    assert.equal(spawnSync('docker', ['kill', '-s', 'HUP', 'ws-nginx']).status, 0);
    // Every replica was told nginx's new workers: all six connections wait for their 1001.
    await retrying(async () => {
      const reports = await Promise.all(
        ['ws-server-0', 'ws-server-1', 'ws-server-2'].map((n) =>
          dockerReplica(n, 8080).request<ConnectionsReport>('GET', CONTROL_PATHS.connections),
        ),
      );
      assert.equal(
        reports.reduce((a, r) => a + r.retired, 0),
        6,
        JSON.stringify(reports),
      );
    }, 15_000);
    const logs = spawnSync('docker', ['logs', 'ws-nginx'], { encoding: 'utf8' });
    assert.match(`${logs.stdout}${logs.stderr}`, /follow-tasks: workers [\d ]+ announced to 3 replica\(s\)/);
  });

  it("scales 3 → 5 (rebalancing) → 2 in code under load: the proxy stays, reloads cut nothing, observed past nginx's deadline", async (t) => {
    const { tls } = topologyFor(3);
    const ca = readFileSync(join(ROOT, tls.dir, tls.caCert));
    const url = `wss://localhost:${HTTPS}/ws-notifications`;
    const proxyBefore = (await running()).get('ws-nginx')!.Id;
    const masterBefore = exec('ws-nginx', 'cat /run/nginx.pid').trim();
    const prometheusBefore = (await running()).get('ws-prometheus')!.Id;

    const abort = new AbortController();
    let latest: Progress | undefined;
    const load = runLoad({
      url,
      ca,
      insecure: false,
      workers: 1,
      signal: abort.signal,
      onProgress: (p) => (latest = p),
      profile: topologyFor(3, {
        load: {
          stages: [{ connections: 120, rampRate: 200, holdMs: 300_000 }],
          senderFraction: 0.25,
          messageRate: 2,
          topics: 5,
          publishRate: 10,
          reconnect: { initialDelayMs: 200, maxDelayMs: 2000 },
          maxDurationMs: 400_000,
        },
      }).load,
    });
    // A failed assertion must not leave the load running into the next test.
    t.after(async () => {
      abort.abort();
      await load.catch(() => undefined);
    });
    await eventually(() => (latest?.open ?? 0) === 120, 30_000, '120 connections open');

    // 3 → 5, with the rebalance the topology can turn on
    const spreadBefore = await spread(3);
    let t0 = Date.now();
    stackDir = synth(5, { proxy: { ...PROXY, rebalance: { enabled: true, windowMs: 2_000, maxFraction: 0.5 } } });
    await deployer.apply(stackDir);
    const upSeconds = (Date.now() - t0) / 1000;
    // Until the rebalance's shed connections have closed and come back, a replica may still count
    // one that is closing: waited for, not read once.
    const spreadAfter = await retrying(async () => {
      const now = await spread(5);
      const counts = Object.values(now);
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        120,
        `every connection is back: ${JSON.stringify(now)}`,
      );
      assert.ok(
        Math.max(...counts) - Math.min(...counts) <= Math.ceil(0.1 * 24) + 1,
        `even after the rebalance: ${JSON.stringify(now)} (before ${JSON.stringify(spreadBefore)})`,
      );
      return now;
    }, 30_000);
    let containers = await running();
    for (const name of ['ws-server-3', 'ws-server-4']) assert.equal(containers.get(name)?.State, 'running', name);
    assert.equal(containers.get('ws-nginx')!.Id, proxyBefore, 'the proxy container was not replaced');
    assert.equal(exec('ws-nginx', 'cat /run/nginx.pid').trim(), masterBefore, 'same nginx master: a reload, not a restart');
    assert.equal(exec('ws-nginx', `grep -c "server ws-server-" ${PROXY_PATHS.config}`).trim(), '5');
    // Judged at the end too, with the run's closes by code.
    const cutScalingUp = latest?.unexpectedCloses;
    await prometheusSees(['ws-server-0', 'ws-server-1', 'ws-server-2', 'ws-server-3', 'ws-server-4']);
    assert.equal(containers.get('ws-prometheus')!.Id, prometheusBefore, 'Prometheus reloaded, not replaced (its history stays)');

    // 5 → 2
    t0 = Date.now();
    stackDir = synth(2);
    await deployer.apply(stackDir);
    const downSeconds = (Date.now() - t0) / 1000;
    const lastReloadAt = Date.now();
    containers = await running();
    for (const name of ['ws-server-2', 'ws-server-3', 'ws-server-4']) assert.ok(!containers.has(name), `${name} removed`);
    assert.equal(containers.get('ws-nginx')!.Id, proxyBefore, 'the proxy container was not replaced');
    assert.equal(exec('ws-nginx', `grep -c "server ws-server-" ${PROXY_PATHS.config}`).trim(), '2');
    await prometheusSees(['ws-server-0', 'ws-server-1']);
    assert.equal(containers.get('ws-prometheus')!.Id, prometheusBefore);
    await eventually(() => (latest?.open ?? 0) === 120, 30_000, 'everyone reconnected');
    // Past nginx's deadline for the last reload's old workers, with margin: they are gone, and nothing was cut.
    await new Promise((r) => setTimeout(r, Math.max(0, PROXY.shutdownTimeoutMs + 5_000 - (Date.now() - lastReloadAt))));
    const retiring = await retiringWorkers();
    // Judged below, once the run's closes by code can be shown with it.
    const cutPastDeadline = latest?.unexpectedCloses;
    await eventually(() => (latest?.open ?? 0) === 120, 30_000, 'everyone connected');
    abort.abort();
    const { stats, deliveryAccount } = await load;

    const onRemoved = stats.perReplica.get('ws-server-2') ?? 0;
    const closes = Object.fromEntries([...stats.closes].map(([code, [e, u]]) => [code, { expected: e, unexpected: u }]));
    const numbers = {
      deployer: deployer.kind,
      applySeconds: { up: upSeconds, down: downSeconds },
      connectionsHeld: 120,
      spread: { beforeScaleUp: spreadBefore, afterScaleUpAndRebalance: spreadAfter },
      onRemovedReplicaBeforeScaleDown: onRemoved,
      observedAfterLastReloadSeconds: (Date.now() - lastReloadAt) / 1000,
      cutScalingUp,
      retiredNginxWorkersLeft: retiring.length,
      closes,
      reconnects: stats.counters.reconnects,
      errors: Object.fromEntries(stats.errors),
      perReplicaOpens: Object.fromEntries(stats.perReplica),
      delivery: {
        ...deliveryAccount,
        recovered: stats.counters.recovered,
        unrecoverable: stats.counters.unrecoverable,
        duplicated: stats.counters.duplicated,
        crossReplica: stats.counters.crossReplica,
      },
    };
    writeFileSync(join(ROOT, 'reports', 'docker-scaling.json'), JSON.stringify(numbers, null, 2));
    console.log(`scaling under load: ${JSON.stringify(numbers)}`);

    assert.equal(cutScalingUp, 0, `scaling up cut nothing: ${JSON.stringify(closes)}`);
    assert.equal(cutPastDeadline, 0, `nothing cut, past the deadline: ${JSON.stringify(closes)}`);
    assert.ok(onRemoved > 0, 'ws-server-2 held connections before the scale-down');
    assert.deepEqual(retiring, [], 'no retired nginx worker outlived the reloads');
    const unexpected = [...stats.closes].reduce((a, [, [, u]]) => a + u, 0);
    assert.equal(unexpected, 0, `no connection was cut (no 1006): ${JSON.stringify(closes)}`);
    assert.deepEqual([...stats.closes.keys()].sort(), [1000, 1001], 'only 1001s (drain, reload, rebalance) and ours at the end');
    assert.ok(closes['1001'].expected >= onRemoved, 'the clients of removed replicas got 1001');
    assert.ok(stats.counters.reconnects >= onRemoved);
    assert.equal(stats.errors.size, 0, `errors: ${JSON.stringify(numbers.errors)}`);
    // Scaling through the broker: the reconnecting clients recovered what they missed.
    assert.ok(deliveryAccount.published > 0 && deliveryAccount.expected > 0, JSON.stringify(numbers.delivery));
    assert.equal(deliveryAccount.lost, 0, `nothing owed went missing: ${JSON.stringify(numbers.delivery)}`);
    assert.equal(stats.counters.duplicated, 0);
    assert.ok(stats.counters.recovered >= onRemoved, `the removed replicas' clients recovered: ${JSON.stringify(numbers.delivery)}`);
    assert.equal(stats.counters.unrecoverable, 0);
  });

  it('a replaced broker container keeps the stream: same epoch, same history (the volume)', async () => {
    const before = await brokerStream();
    assert.ok(before.messages > 0, 'publications from the runs before');
    const oldId = (await running()).get('ws-nats')!.Id;
    // Any attribute change replaces the container; the volume is a resource of its own and stays.
    stackDir = synth(2, {}, (doc) => {
      const nats = Object.values(doc.resource.docker_container).find((c: any) => c.name === 'ws-nats') as any;
      nats.env = ['REPLACED=1'];
    });
    await deployer.apply(stackDir);
    assert.notEqual((await running()).get('ws-nats')!.Id, oldId, 'a new container');
    assert.deepEqual(await retrying(brokerStream, 30_000), before, 'the same stream, created at the same time, with the same messages');
  });

  it('with auth off and the publish API on: the load job publishes through it with the mounted key; a client may not publish', async (t) => {
    rmSync(REPORT, { force: true });
    const keyFile = join(scratchDir('ws-docker-api-'), 'api.key');
    writeFileSync(keyFile, 'docker-test-api-key-0123456789\n');
    stackDir = synth(2, {
      auth: { mode: 'none' },
      server: { apiKeyFile: keyFile },
      proxy: { ...PROXY, publishApi: true },
      load: { ...LOAD, publishApi: { keyFile } },
    });
    const { outputs } = await deployer.apply(stackDir);
    assert.equal(outputs.load_exit_code, 0);
    const report = JSON.parse(readFileSync(REPORT, 'utf8'));
    assert.deepEqual(report.errors, {});
    assert.ok(report.delivery.published > 0 && report.delivery.expected > report.delivery.published, JSON.stringify(report.delivery));
    assert.equal(report.delivery.lost, 0, JSON.stringify(report.delivery));
    const { tls } = topologyFor(2);
    const client = await TestClient.open(`wss://localhost:${HTTPS}/ws-notifications`, {
      ca: readFileSync(join(ROOT, tls.dir, tls.caCert)),
    });
    t.after(() => client.close());
    await client.next('hello');
    client.send({ type: 'publish', topic: 'docker-test', data: 'forged' });
    assert.equal((await client.next('error')).code, 'forbidden');
  });

  it('with auth.mode jwt: the ws-idp container issues the tokens, the load job passes with them, a stranger is refused, the page signs in through the proxy', async (t) => {
    rmSync(REPORT, { force: true });
    stackDir = synth(2, { auth: { mode: 'jwt' } });
    const { outputs } = await deployer.apply(stackDir);
    assert.equal((await running()).get(DEV_IDP.host)?.State, 'running');
    assert.equal(outputs.load_exit_code, 0);
    const report = JSON.parse(readFileSync(REPORT, 'utf8'));
    assert.equal(report.connections.failed, 0);
    assert.ok(report.auth, 'the report counts auth');
    assert.equal(report.auth.tokens, 300, 'a token per virtual user, from ws-idp');
    assert.equal(report.auth.denied, 0);
    assert.equal(report.delivery.lost, 0, JSON.stringify(report.delivery));
    assert.equal(report.passed, true);
    // Without a token, nothing but connect: a subscribe first is closed with the documented code.
    const { tls } = topologyFor(2);
    const stranger = await TestClient.open(`wss://localhost:${HTTPS}/ws-notifications`, {
      ca: readFileSync(join(ROOT, tls.dir, tls.caCert)),
    });
    t.after(() => stranger.close());
    stranger.send({ type: 'subscribe', topic: 'docker-test' });
    const closed = await stranger.closed;
    assert.equal(closed.code, CloseCode.badRequest);

    // A browser reaches ws-idp only through the proxy: the page signs in there (code flow with PKCE).
    const ca = readFileSync(join(ROOT, tls.dir, tls.caCert));
    const proxied = await httpsRequest(`https://localhost:${HTTPS}${DEV_IDP.proxyPath}/.well-known/openid-configuration`, ca);
    assert.equal(proxied.status, 200, proxied.body);
    const discovery = JSON.parse(proxied.body);
    assert.equal(discovery.issuer, DEV_IDP_ISSUER, 'the issuer the replicas check');
    assert.equal(discovery.authorization_endpoint, `https://localhost:${HTTPS}${DEV_IDP.proxyPath}/auth`, 'an endpoint a browser reaches');
    const browser = await launchChromium(await servedKeyPin(HTTPS, ca));
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`https://localhost:${HTTPS}/?topics=user.{sub}.inbox,ops.alerts`);
    await signInOnPage(page, 'dana');
    assert.equal(await page.locator('#user').textContent(), 'signed in as dana');
    await topicBadge(page, 'user.dana.inbox', 'live').waitFor();
    await topicBadge(page, 'ops.alerts', 'denied').waitFor();
    console.log(
      `auth on docker: ${report.auth.tokens} tokens from ws-idp, ${report.connections.opened} connections, lost ${report.delivery.lost}; the page signed in through the proxy`,
    );
  });

  it('destroy removes everything it created; a second destroy is a no-op', async () => {
    await deployer.destroy(stackDir);
    assert.equal((await running()).size, 0, 'no containers left');
    assert.equal(
      (await docker.listNetworks({ filters: { name: ['ws-notifications'] } })).filter((n) => n.Name === 'ws-notifications').length,
      0,
      'network gone',
    );
    await assert.rejects(docker.getVolume(BROKER_VOLUME).inspect(), 'the broker volume removed');
    for (const image of ['ws-notifications/app:local', 'ws-notifications/nginx:local']) {
      await assert.rejects(docker.getImage(image).inspect(), `${image} removed`);
    }
    await deployer.destroy(stackDir);
    assert.equal((await running()).size, 0);
  });

  it('a broken image build fails the deploy, naming the resource', async () => {
    stackDir = synth(1, {}, (doc) => {
      const [, image] = Object.entries(doc.resource.docker_image).find(([id]) => id.startsWith('app-image')) as [string, any];
      image.build.build_args.NODE_IMAGE = 'ws-notifications/no-such-base:1';
    });
    await assert.rejects(deployer.apply(stackDir), /docker_image\.app-image/);
    await deployer.destroy(stackDir);
  });

  it('a container that fails its health check fails the deploy, naming the resource', async () => {
    stackDir = synth(1, {}, (doc) => {
      const [id, c] = Object.entries(doc.resource.docker_container).find(([, v]: any) => v.name === 'ws-server-0') as [string, any];
      c.healthcheck = { ...c.healthcheck, test: ['CMD', 'false'], interval: '1s', retries: 1, start_period: '1s' };
      c.wait_timeout = 20;
      assert.ok(id);
    });
    await assert.rejects(deployer.apply(stackDir), /docker_container\.fleet_ws-server-0/);
    await deployer.destroy(stackDir);
    assert.equal((await running()).size, 0);
  });
});
