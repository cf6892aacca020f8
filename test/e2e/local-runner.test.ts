import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { belongsToRun } from '../../local/leftovers';
import { eventually, TestClient } from '../helpers/server';
import { ROOT } from '../helpers/synth';
import { runLocal } from '../helpers/local-run';
import { scratchDir } from '../helpers/scratch';

/** `npm run local`: the entry point itself by default (signals reach the runner). */
const local = (args: string[], via: 'node' | 'npm' = 'node') => runLocal(args, via);

const runtimeDirOf = (output: string) => /^runtime (\S+)/m.exec(output)?.[1];

/** Processes of a run still alive: the marked ones (nginx's master, the replicas, the client) and their process groups (nginx's workers). */
function marked(runDir: string): number[] {
  const pids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const groupOf = (pid: number) => {
    try {
      return Number(
        readFileSync(`/proc/${pid}/stat`, 'utf8')
          .replace(/^.*\) /, '')
          .split(' ')[2],
      );
    } catch {
      return -1;
    }
  };
  const groups = new Set(pids.filter((pid) => belongsToRun(pid, runDir)).map(groupOf));
  return pids.filter((pid) => belongsToRun(pid, runDir) || groups.has(groupOf(pid)));
}

describe('npm run local', () => {
  it("injects faults for real: a reload cuts nothing, a killed replica's closes are the fault's, and the default thresholds pass", async () => {
    const dir = scratchDir('ws-runner-test-');
    const report = join(dir, 'r.json');
    const run = local([
      '--replicas',
      '3',
      '--connections',
      '150',
      '--duration',
      '14s',
      '--fault',
      'reload-proxy@3s',
      '--fault',
      'kill-replica:1@7s',
      '--report',
      report,
      '--html',
      join(dir, 'r.html'),
    ]);
    const code = await run.exited;
    assert.equal(code, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8'));
    assert.deepEqual(r.closesUnexpected, {});
    assert.deepEqual(
      r.faults.map((f: { id: string }) => f.id),
      ['reload-proxy@3s', 'kill-replica:1@7s'],
    );
    const [reload, kill] = r.faults;
    assert.equal(reload.closes, 0, 'the reload closed nothing');
    assert.equal(kill.replica, 'ws-server-1');
    assert.ok(kill.closes > 0 && kill.closes === r.closesFault['1006'], `the kill's 1006s are its own: ${JSON.stringify(r.closesFault)}`);
    assert.ok(r.thresholds.some((t: { expression: string; pass: boolean }) => t.expression === 'closes.unexpected==0' && t.pass));
    assert.equal(r.connections.failed, 0);
    assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /kill-replica:1@7s/);
    assert.match(run.output(), /fault reload-proxy@3s: nginx reloaded/);
  });

  it("with the broker: a killed replica's clients recover what they missed; publications refused during a broker restart are the fault's, and retried; a reload on top loses nothing", async () => {
    const dir = scratchDir('ws-runner-broker-');
    const report = join(dir, 'r.json');
    const run = local([
      '--broker',
      '--replicas',
      '2',
      '--connections',
      '100',
      '--duration',
      '14s',
      '--topics',
      '5',
      '--publish-rate',
      '20',
      '--fault',
      'kill-replica:1@4s',
      '--fault',
      'restart-broker@8s',
      '--fault',
      'reload-proxy@10s',
      '--report',
      report,
      '--html',
      join(dir, 'r.html'),
    ]);
    assert.equal(await run.exited, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8'));
    assert.ok(r.delivery.crossReplica > 0, 'notifications crossed replicas');
    assert.ok(r.delivery.accounted && r.delivery.published > 0 && r.delivery.expected > r.delivery.published, JSON.stringify(r.delivery));
    assert.equal(r.delivery.lost, 0, 'every subscriber got everything stored after it subscribed');
    assert.ok(r.delivery.recovered > 0, `the killed replica's clients recovered: ${JSON.stringify(r.delivery)}`);
    assert.equal(r.delivery.unrecoverable, 0);
    assert.equal(r.delivery.duplicated, 0);
    assert.equal(r.delivery.reordered, 0);
    assert.deepEqual(r.errors, {}, "refusals while the broker restarts are the fault's");
    const restart = r.faults.find((f: { kind: string }) => f.kind === 'restart-broker');
    assert.ok(restart.errors > 0, 'publications were refused while the broker was down');
    assert.equal(r.delivery.publishRetries, restart.errors, 'every one of them was sent again');
    assert.equal(r.connections.failed, 0);
    assert.match(run.output(), /fault restart-broker@8s: nats-server restarted/);
    assert.match(run.output(), /fault reload-proxy@10s: nginx reloaded/);
    assert.deepEqual(r.closesUnexpected, {}, 'the reload cut nothing');
  });

  it('--publish-api: the load client publishes as a backend does, through nginx with the key, to replicas closed to client publishing', async () => {
    const dir = scratchDir('ws-runner-api-');
    const report = join(dir, 'r.json');
    const keyFile = join(dir, 'api.key');
    writeFileSync(keyFile, 'runner-api-key-0123456789\n');
    const flags = ['--broker', '--replicas', '2', '--connections', '100', '--duration', '8s', '--topics', '5', '--publish-rate', '20'];
    const run = local(['--publish-api', '--api-key-file', keyFile, ...flags, '--report', report]);
    assert.equal(await run.exited, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8'));
    assert.ok(r.delivery.accounted && r.delivery.published > 50 && r.delivery.expected > r.delivery.published, JSON.stringify(r.delivery));
    assert.equal(r.delivery.lost, 0, JSON.stringify(r.delivery));
    assert.deepEqual(r.errors, {}, 'no publication went over a WebSocket to be refused');
    assert.ok(r.delivery.crossReplica > 0, 'posted to any replica through nginx, delivered from every one');
  });

  it("--protocol centrifuge: the same accounting over Centrifugo's protocol: recovery after a replica kill and a broker restart, token refreshes on the client's timer, a revocation's closes", async () => {
    const dir = scratchDir('ws-runner-centrifuge-');
    const report = join(dir, 'r.json');
    const run = local([
      '--protocol',
      'centrifuge',
      '--auth',
      '--token-ttl',
      '6s',
      '--replicas',
      '2',
      '--connections',
      '100',
      '--duration',
      '16s',
      '--topics',
      '5',
      '--publish-rate',
      '20',
      '--fault',
      'kill-replica:1@4s',
      '--fault',
      'restart-broker@8s',
      '--fault',
      'revoke:3@12s',
      '--report',
      report,
      '--html',
      join(dir, 'r.html'),
    ]);
    assert.equal(await run.exited, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8'));
    assert.match(r.target, /\/connection\/websocket$/);
    assert.ok(r.delivery.accounted && r.delivery.published > 0 && r.delivery.expected > r.delivery.published, JSON.stringify(r.delivery));
    assert.deepEqual(
      [r.delivery.lost, r.delivery.duplicated, r.delivery.reordered, r.delivery.unrecoverable],
      [0, 0, 0, 0],
      JSON.stringify(r.delivery),
    );
    assert.ok(r.delivery.recovered > 0, `the killed replica's clients recovered: ${JSON.stringify(r.delivery)}`);
    assert.ok(r.auth.refreshed >= 100, `every user refreshed in-band: ${JSON.stringify(r.auth)}`);
    assert.deepEqual([r.auth.denied, r.auth.expiredCloses, r.auth.revokedCloses], [0, 0, 3], JSON.stringify(r.auth));
    assert.equal(r.closesFault['3503'], 3, `the revocation closed its users with Centrifugo's code: ${JSON.stringify(r.closesFault)}`);
    assert.deepEqual(r.errors, {}, "refusals while the broker restarts are the fault's");
    assert.deepEqual(r.closesUnexpected, {});
    assert.equal(r.connections.failed, 0);
  });

  it('with --auth: every user connects with its own token from the real provider, refreshes it, survives a key rotation; a revocation closes exactly its users', async () => {
    const dir = scratchDir('ws-runner-auth-');
    const report = join(dir, 'r.json');
    // The token in the first message, as a browser sends it (the Docker test runs the default, the header).
    const run = local([
      '--auth',
      '--token-in',
      'message',
      '--replicas',
      '2',
      '--connections',
      '150',
      '--duration',
      '24s',
      '--token-ttl',
      '8s',
      '--fault',
      'rotate-keys@8s',
      '--fault',
      'revoke:4@14s',
      '--report',
      report,
      '--html',
      join(dir, 'r.html'),
    ]);
    assert.equal(await run.exited, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8'));
    assert.ok(r.auth.tokens >= 150 && r.auth.refreshed >= 150, `every user refreshed: ${JSON.stringify(r.auth)}`);
    assert.deepEqual([r.auth.denied, r.auth.expiredCloses, r.auth.revokedCloses], [0, 0, 4], JSON.stringify(r.auth));
    assert.deepEqual(r.closesFault, { '4501': 4 }, 'the revocation closed its users, with the revocation code');
    assert.equal(r.faults.find((f: { kind: string }) => f.kind === 'rotate-keys').closes, 0, 'the rotation closed nothing');
    assert.deepEqual([r.connections.failed, r.delivery.lost], [0, 0]);
    assert.deepEqual(r.closesUnexpected, {});
    assert.match(run.output(), /identity provider http:\/\/127\.0\.0\.1:\d+ \(oidc-provider/);
    assert.match(run.output(), /users ws-replica and ws-backend .*nobody else/, 'the broker took users');
  });

  it('`npm run token` prints a token from the running provider that any WebSocket client can connect with through nginx', async () => {
    const dir = scratchDir('ws-runner-token-');
    const run = local([
      '--auth',
      '--replicas',
      '1',
      '--connections',
      '10',
      '--duration',
      '3s',
      '--linger',
      '2m',
      '--report',
      join(dir, 'r.json'),
    ]);
    try {
      await eventually(() => run.output().includes('load finished'), 60_000, 'the load finished and the run lingers');
      const made = spawnSync('npm', ['run', '--silent', 'token', '--', '--sub', 'alice', '--grant', 'news.*:subscribe', '--ttl', '10m'], {
        encoding: 'utf8',
      });
      assert.equal(made.status, 0, made.stderr);
      const token = made.stdout.trim();
      assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout is the token alone');
      const url = /^proxy (wss:\S+)/m.exec(run.output())![1];
      const ca = readFileSync(join(ROOT, 'certs/generated/ca.crt'));
      const client = await TestClient.open(url, { ca });
      client.send({ type: 'connect', token });
      assert.equal((await client.next('hello', 5000)).sub, 'alice');
      client.send({ type: 'subscribe', topic: 'news.world' });
      await client.next('subscribed');
      client.send({ type: 'subscribe', topic: 'billing.invoices' });
      assert.deepEqual([(await client.next('error')).code], ['forbidden']);
      client.close();
      // The same token in the upgrade's header, through nginx: hello with no connect sent.
      const headed = await TestClient.open(url, { ca, headers: { authorization: `Bearer ${token}` } });
      assert.equal((await headed.next('hello', 5000)).sub, 'alice');
      headed.close();
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
    }
  });

  it('a run forced past the load client is INCONCLUSIVE (exit 4, an amber badge), not a green PASS; --accept-untrustworthy judges by the thresholds', async () => {
    // 3,000 TLS handshakes asked at 2,000/s on this 2-core machine, everything else sharing it:
    // the client's event loop and CPU saturate (checked on the reference machine; docs/benchmarks/default-run.md).
    const dir = scratchDir('ws-runner-inconclusive-');
    const run = local([
      '--connections',
      '3000',
      '--ramp-rate',
      '2000',
      '--duration',
      '8s',
      '--no-broker',
      '--report',
      join(dir, 'r.json'),
      '--html',
      join(dir, 'r.html'),
    ]);
    assert.equal(await run.exited, 4, run.output());
    const r = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    assert.deepEqual([r.verdict, r.passed, r.generator.trustworthy], ['INCONCLUSIVE', true, false]);
    assert.equal(r.opening.held, false);
    assert.match(r.opening.bottleneck, /load client/);
    assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /class="verdict inconclusive">INCONCLUSIVE/);
    assert.match(run.output(), /verdict +INCONCLUSIVE/);

    const accepted = local([
      '--connections',
      '3000',
      '--ramp-rate',
      '2000',
      '--duration',
      '8s',
      '--no-broker',
      '--accept-untrustworthy',
      '--report',
      join(dir, 'a.json'),
      '--html',
      join(dir, 'a.html'),
    ]);
    assert.equal(await accepted.exited, 0, accepted.output());
    assert.equal(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')).verdict, 'PASS');
  });

  it('SIGTERM (what timeout, CI runners and supervisors send) stops everything: to the runner during the load or while lingering, or to npm', async () => {
    for (const phase of ['load', 'linger', 'npm'] as const) {
      // npm exits on SIGTERM without passing it on; the runner sees its launcher go.
      const run = local(
        [
          '--replicas',
          '2',
          '--connections',
          '20',
          '--duration',
          phase === 'linger' ? '2s' : '60s',
          ...(phase === 'linger' ? ['--linger', '10m'] : []),
          '--report',
          join(tmpdir(), `ws-sigterm-${phase}.json`),
        ],
        phase === 'npm' ? 'npm' : 'node',
      );
      await eventually(
        () => (phase === 'linger' ? /everything stays up/ : /\[load\] \d+s open 20\/20/).test(run.output()),
        30_000,
        `${phase} phase`,
      );
      const dir = runtimeDirOf(run.output())!;
      // nginx's master and two workers, two replicas, and the client while the load runs.
      assert.ok(
        dir && marked(dir).length >= (phase === 'linger' ? 5 : 6),
        `${phase}: nginx, the replicas (and the client) run: ${marked(dir)} (${dir})`,
      );
      run.child.kill('SIGTERM');
      const code = await run.exited;
      // (npm itself dies of the signal; the runner it leaves behind has to notice.)
      // During the load: interrupted (3). While lingering the load is over and its verdict stands.
      if (phase !== 'npm') assert.equal(code, phase === 'load' ? 3 : 0, `${phase}: the runner's exit code:\n${run.output()}`);
      await eventually(() => marked(dir).length === 0, 25_000, `${phase}: nothing of the run is left (${marked(dir)})`);
      // Via npm the runner's own exit cannot be awaited: it removes the directory just after its children.
      if (phase === 'npm') await eventually(() => !existsSync(dir), 5_000, 'npm: the runtime directory is gone');
      else assert.equal(existsSync(dir), false, `${phase}: the runtime directory is gone`);
    }
  });

  it('a run that died by SIGKILL leaves nothing the next start trips over', async () => {
    const first = local(['--replicas', '2', '--connections', '20', '--duration', '60s', '--report', join(tmpdir(), 'ws-sigkill.json')]);
    await eventually(() => /\[load\] \d+s open 20\/20/.test(first.output()), 30_000, 'first run under load');
    const dir = runtimeDirOf(first.output())!;
    assert.ok(marked(dir).length >= 6, `its nginx (master and workers), replicas and client run: ${marked(dir)}`);
    first.child.kill('SIGKILL');
    await first.exited;
    // Its processes outlive it (own process groups). Only a start's clean-up can remove them:
    // this next one's, or a parallel test file's start, which reaps dead runs just the same.
    const second = local([
      '--replicas',
      '1',
      '--connections',
      '5',
      '--duration',
      '2s',
      '--report',
      join(tmpdir(), 'ws-after-sigkill.json'),
    ]);
    assert.equal(await second.exited, 0, second.output());
    assert.deepEqual(marked(dir), []);
    assert.equal(existsSync(dir), false);
  });

  it("--keep-logs keeps the replicas' logs beside nginx's", async () => {
    const run = local([
      '--replicas',
      '2',
      '--connections',
      '10',
      '--duration',
      '2s',
      '--keep-logs',
      '--report',
      join(tmpdir(), 'ws-keep-logs.json'),
    ]);
    assert.equal(await run.exited, 0, run.output());
    const dir = runtimeDirOf(run.output())!;
    for (const file of ['access.log', 'error.log', 'logs/ws-server-0.log', 'logs/ws-server-1.log'])
      assert.ok(existsSync(join(dir, file)), file);
    assert.match(readFileSync(join(dir, 'logs/ws-server-0.log'), 'utf8'), /"msg":"listening"/);
    assert.deepEqual(marked(dir), []);
  });
});
