import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runLocal } from '../helpers/local-run';
import { commandOutput } from '../helpers/tools';
import { scratchDir } from '../helpers/scratch';

/**
 * `npm run local -- --ha`: two nginx with keepalived, each in a network namespace, the client in a
 * third, the replicas and nats-server on the host. Real kernel VRRP, real kills.
 */
const local = (args: string[], via: 'npm' | 'node' = 'npm') => runLocal(args, via);

/** What a run's lab left: its namespaces, its bridge, its forwarding rules. */
function labLeftovers(output: string): string[] {
  const pid = /namespace wsl-(\d+)-/.exec(output)?.[1];
  assert.ok(pid, `the run names its namespaces:\n${output}`);
  const netns = commandOutput('ip', ['netns', 'list'], 'iproute2')
    .split('\n')
    .filter((l) => l.startsWith(`wsl-${pid}-`));
  const bridges = commandOutput('ip', ['-o', 'link', 'show', 'type', 'bridge'], 'iproute2')
    .split('\n')
    .filter((l) => l.includes(`wslbr${pid}`));
  const rules = commandOutput('iptables', ['-S', 'FORWARD'], 'iptables')
    .split('\n')
    .filter((l) => l.includes(`wslbr${pid}`));
  return [...netns, ...bridges, ...rules];
}

type Report = {
  failover?: {
    seconds?: number;
    from: string;
    to?: string;
    dropped: number;
    refused: number;
    reconnected: number;
    allReconnectedSeconds?: number;
    storm: { opensPerSecond: number }[];
  };
  delivery: { accounted: boolean; lost: number; expected: number; recovered: number };
  connections: { failed: number; peak: number; tlsResumed: number };
  closesUnexpected: Record<string, number>;
  closesExpected: Record<string, number>;
  closesFault: Record<string, number>;
  faults: { id: string; closes: number; errors: number }[];
  verdict: string;
};

describe('npm run local -- --ha (keepalived pair in network namespaces)', () => {
  it("kill-proxy: the backup answers on the virtual address within 5 s, every client comes back, nothing owed is missing (the issue's command)", async () => {
    const dir = scratchDir('ws-ha-test-');
    const report = join(dir, 'r.json');
    // The command as written, judged whole: its reconnect storm fills both cores for a few
    // seconds, and exit 0 needs the client to have stayed trustworthy through it (it goes first on
    // the CPU: docs/architecture.md, "The client's share of the CPU").
    const run = local([
      '--ha',
      '--connections',
      '2000',
      '--duration',
      '60s',
      '--topics',
      '10',
      '--publish-rate',
      '20',
      '--fault',
      'kill-proxy@20s',
      '--report',
      report,
      '--html',
      join(dir, 'r.html'),
    ]);
    const code = await run.exited;
    // The runner's output ends with the client's summary, its generator line included.
    assert.equal(code, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8')) as Report;
    const f = r.failover!;
    assert.ok(f, 'the report has the failover');
    assert.ok(f.seconds !== undefined && f.seconds <= 5, `failover ${f.seconds} s`);
    assert.ok(
      f.from !== f.to && [f.from, f.to].every((p) => /^ws-nginx-[01]$/.test(p ?? '')),
      `the holder was killed and the other took the address: ${f.from} → ${f.to}`,
    );
    assert.ok(f.dropped > 1000, `the killed proxy carried the clients: ${f.dropped} dropped`);
    assert.equal(f.reconnected, f.dropped, 'every dropped client reconnected');
    assert.ok(f.allReconnectedSeconds !== undefined, 'all back, with the time it took');
    assert.ok(Math.max(...f.storm.map((p) => p.opensPerSecond)) > 0, 'the storm is recorded');
    assert.equal(r.connections.failed, 0);
    assert.equal(r.connections.peak, 2000);
    assert.ok(r.delivery.accounted && r.delivery.expected > 0);
    assert.equal(r.delivery.lost, 0, 'nothing the clients were owed is missing');
    assert.ok(r.delivery.recovered > 0, 'reconnected clients recovered what they missed');
    assert.deepEqual(r.closesUnexpected, {});
    assert.equal(r.closesFault['1006'], f.dropped, "the cut connections are the fault's");
    assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /<h2>Failover<\/h2>/);
    assert.equal(r.verdict, 'PASS');
    assert.ok(r.connections.tlsResumed >= f.reconnected, 'reconnects resumed their TLS session on the other proxy (shared ticket key)');
    assert.deepEqual(labLeftovers(run.output()), [], 'namespaces, bridge and forwarding rule removed');
  });

  it('stop-proxy moves every client with 1001 before the address moves, cutting nothing; reload-proxy reloads both proxies and cuts nothing', async () => {
    const dir = scratchDir('ws-ha-test-');
    const report = join(dir, 'r.json');
    const run = local([
      '--ha',
      '--connections',
      '300',
      '--duration',
      '30s',
      '--fault',
      'reload-proxy@4s',
      '--fault',
      'stop-proxy@9s',
      '--report',
      report,
      '--html',
      join(dir, 'r.html'),
    ]);
    const code = await run.exited;
    assert.equal(code, 0, run.output());
    const r = JSON.parse(readFileSync(report, 'utf8')) as Report;
    const [reload, stopped] = r.faults;
    assert.equal(reload.closes, 0, 'the reload cut nothing');
    assert.match(run.output(), /fault reload-proxy@4s: nginx reloaded/);
    assert.match(run.output(), /fault stop-proxy@9s: ws-nginx-\d stopped listening; \d+ connection\(s\) through it asked to move/);
    assert.equal(stopped.closes, 0, 'the graceful stop cut nothing');
    assert.deepEqual(r.closesFault, {});
    assert.deepEqual(r.closesUnexpected, {});
    // The reload's own 1001s wait until shortly before nginx's deadline (minutes): these are the stop's.
    assert.ok(
      (r.closesExpected['1001'] ?? 0) >= 250,
      `the stopped proxy's clients were asked to move (1001): ${JSON.stringify(r.closesExpected)}`,
    );
    assert.ok(r.failover?.seconds !== undefined && r.failover.seconds <= 5, `failover ${r.failover?.seconds} s`);
    assert.equal(r.failover!.dropped, 0);
    assert.equal(r.connections.failed, 0);
    assert.equal(r.delivery.lost, 0, 'no connection was left half-open on the old node');
  });

  it('Ctrl-C leaves no namespace, bridge or rule behind', async () => {
    // The runner itself, as the terminal's Ctrl-C reaches it (npm may not pass SIGINT on).
    const run = local(['--ha', '--connections', '50', '--duration', '5m'], 'node');
    const deadline = Date.now() + 60_000;
    while (!/clients use/.test(run.output())) {
      assert.ok(Date.now() < deadline && run.child.exitCode === null, run.output());
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.notDeepEqual(labLeftovers(run.output()), [], 'the lab exists while the run does (so the check below can fail)');
    process.kill(run.child.pid!, 'SIGINT');
    await run.exited;
    // npm may exit before its script has finished tearing down.
    const until = Date.now() + 30_000;
    while (labLeftovers(run.output()).length && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(labLeftovers(run.output()), []);
  });
});
