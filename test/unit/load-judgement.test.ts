import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { classifyHandshakeError } from '../../app/src/client/connect-errors';
import { HandshakeGate } from '../../app/src/client/handshake-gate';
import {
  BUSY_SHARE_LIMIT,
  CPU_LIMIT_PERCENT,
  GeneratorHealthJudge,
  LAG_LIMIT_MS,
  STARVED_CPU_PERCENT,
} from '../../app/src/client/generator-health';
import { openingOf, verdictOf } from '../../app/src/client/report';
import type { GeneratorHealth } from '../../app/src/client/report-model';
import type { Snapshot } from '../../app/src/client/runner';
import { Stats } from '../../app/src/client/stats';
import { Timeline } from '../../app/src/client/timeline';
import { ConfigError } from '../../app/src/shared/errors';
import { checkListenBacklog } from '../../local/run';
import { nginxLimitsHit } from '../../local/limits';
import { scratchDir } from '../helpers/scratch';

const healthy: GeneratorHealth = {
  trustworthy: true,
  reasons: [],
  eventLoopLagP99Ms: 3,
  eventLoopLagMaxMs: 9,
  cpuPercentMax: 40,
  intervals: 20,
  busyIntervals: 0,
  warmupIntervals: 1,
  workers: 1,
};
const busy: GeneratorHealth = { ...healthy, trustworthy: false, reasons: ['event-loop lag'] };
const latency = (p50: number, p99: number) => ({ p50, p90: p99, p99, p999: p99, max: p99, count: 100 });

describe('the handshake gate', () => {
  it('admits at most its limit, then one per release, in order; a second release frees nothing', async () => {
    const gate = new HandshakeGate(2);
    const started: number[] = [];
    const releases: (() => void)[] = [];
    for (let i = 0; i < 5; i++)
      gate.enter((release) => {
        started.push(i);
        releases.push(release);
      });
    assert.deepEqual(started, [0, 1]);
    assert.equal(gate.queued, 3);
    releases[0]();
    releases[0]();
    await Promise.resolve();
    assert.deepEqual(started, [0, 1, 2], 'one release, one admission');
    releases[1]();
    releases[2]();
    await Promise.resolve();
    await Promise.resolve();
    assert.deepEqual(started, [0, 1, 2, 3, 4]);
    assert.equal(gate.queued, 0);
  });
  it('refuses a limit below one', () => assert.throws(() => new HandshakeGate(0), /limit/));
});

describe('the verdict', () => {
  it('is PASS only when the thresholds passed and the generator was trustworthy (or that was accepted)', () => {
    assert.equal(verdictOf(true, healthy, false), 'PASS');
    assert.equal(verdictOf(true, busy, false), 'INCONCLUSIVE');
    assert.equal(verdictOf(true, busy, true), 'PASS');
    assert.equal(verdictOf(false, healthy, false), 'FAIL');
    assert.equal(verdictOf(false, busy, true), 'FAIL');
  });
});

/** One process's snapshot of one second, with the given load. */
function snapshot(seq: number, load: { lag: number; cpu: number }): Snapshot {
  const stats = new Stats();
  return {
    stats: stats.serialize(),
    interval: stats.takeInterval(),
    loopLagP99Ms: load.lag,
    loopLagMaxMs: load.lag,
    cpuPercent: load.cpu,
    users: 0,
    seq,
    intervalMs: 1000,
    done: false,
  };
}

describe('the generator health', () => {
  /** One process's seconds after a calm warm-up second. */
  const judged = (loads: { lag: number; cpu: number }[], warmup = calm) => {
    const judge = new GeneratorHealthJudge();
    [warmup, ...loads].forEach((l, i) => judge.observe(snapshot(i + 1, l)));
    return judge.verdict(1);
  };
  const calm = { lag: 12, cpu: 30 };
  const lagging = { lag: LAG_LIMIT_MS + 1, cpu: 30 };
  const busy = { lag: 12, cpu: CPU_LIMIT_PERCENT + 1 };
  // 120 intervals: one more than `allowed` busy ones is exactly the share.
  const allowed = Math.round(120 * BUSY_SHARE_LIMIT) - 1;

  it('stays trustworthy while busy intervals stay under their share, and says how many there were', () => {
    const h = judged([...Array(allowed).fill(lagging), ...Array(120 - allowed).fill(calm)]);
    assert.equal(h.trustworthy, true, h.reasons.join());
    assert.deepEqual([h.busyIntervals, h.intervals], [allowed, 120]);
    assert.equal(h.eventLoopLagP99Ms, LAG_LIMIT_MS + 1);
  });
  it('is untrustworthy from its share on, counting lag and CPU alike', () => {
    const h = judged([...Array(allowed).fill(lagging), busy, ...Array(119 - allowed).fill(calm)]);
    assert.equal(h.trustworthy, false);
    assert.equal(h.busyIntervals, allowed + 1);
    assert.match(h.reasons[0], new RegExp(`in ${allowed + 1} of 120 intervals`));
  });
  it('says when it lagged with the cores taken by others, and when its own work was the load', () => {
    const starved = { lag: LAG_LIMIT_MS + 5, cpu: STARVED_CPU_PERCENT - 30 };
    const own = judged([lagging, busy, busy, calm]);
    assert.match(own.reasons[0], /use more workers or fewer connections/);
    const others = judged([starved, starved, busy, calm]);
    assert.match(others.reasons[0], /in 2 of them it used under 50% CPU: other processes had the cores/);
  });
  it('never judges a short run by a single busy second', () => assert.equal(judged([lagging, calm]).trustworthy, true));
  it("leaves each process's first second (its warm-up) out of the count, but not out of the maxima", () => {
    // The 5-interval job: a lagging start-up second and one lagging second after it.
    const h = judged([lagging, calm, calm, calm], { lag: 127, cpu: 57 });
    assert.equal(h.trustworthy, true, h.reasons.join());
    assert.deepEqual([h.busyIntervals, h.intervals, h.warmupIntervals, h.eventLoopLagP99Ms], [1, 4, 1, 127]);
    // Two lagging seconds after the warm-up still make it untrustworthy.
    assert.equal(judged([lagging, lagging, calm, calm], { lag: 127, cpu: 57 }).trustworthy, false);
    // Every process has a warm-up of its own.
    const judge = new GeneratorHealthJudge();
    for (const seq of [1, 1, 2, 2]) judge.observe(snapshot(seq, seq === 1 ? lagging : calm));
    assert.deepEqual([judge.verdict(2).warmupIntervals, judge.verdict(2).busyIntervals], [2, 0]);
  });
});

describe('the timeline', () => {
  const calm = (worker: number) => ({ lag: 12 + worker, cpu: 30 + worker });
  it("gives each second the busiest process's lag and CPU", () => {
    const timeline = new Timeline(2, performance.now());
    timeline.add(0, snapshot(1, { lag: 80, cpu: 20 }));
    assert.equal(timeline.points.length, 0, 'waits for every process');
    timeline.add(1, snapshot(1, { lag: 11, cpu: 65 }));
    timeline.add(0, snapshot(2, calm(0)));
    timeline.add(1, snapshot(2, calm(1)));
    assert.deepEqual(
      timeline.points.map((p) => [p.generatorLagP99Ms, p.generatorCpuPercent]),
      [
        [80, 65],
        [13, 31],
      ],
    );
  });
});

describe('the opening rate', () => {
  const ramp = { connections: 1000, askedPerSecond: 250 };
  it('holds at 90% of the asked rate or better', () => {
    assert.deepEqual(openingOf({ ...ramp, allOpenSeconds: 4.2 }, 64, healthy, latency(10, 30), latency(0, 0.01)), {
      askedPerSecond: 250,
      achievedPerSecond: 238,
      held: true,
      maxHandshakesInFlight: 64,
    });
  });
  it('names the generator when it was the bottleneck', () => {
    const o = openingOf({ ...ramp, allOpenSeconds: 8 }, 64, busy, latency(100, 300), latency(400, 900));
    assert.equal(o.held, false);
    assert.match(o.bottleneck!, /load client/);
  });
  it("names the target's handshake time when the slots were full and the client was not busy", () => {
    const o = openingOf({ ...ramp, allOpenSeconds: 8 }, 64, healthy, latency(500, 900), latency(300, 700));
    assert.match(o.bottleneck!, /target's handshake time: 64 in flight at connect p50 500 ms sustain about 128\/s/);
  });
  it('a ramp that never got all its connections open did not hold', () => {
    const o = openingOf(ramp, 64, healthy, latency(10, 30), latency(0, 0));
    assert.deepEqual([o.achievedPerSecond, o.held], [null, false]);
    assert.match(o.bottleneck!, /connections failed or closed/);
  });
});

describe('the listen backlog', () => {
  const dir = scratchDir('somaxconn-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  const somaxconn = (value: string) => {
    const file = join(dir, `somaxconn-${files++}`);
    writeFileSync(file, value);
    return file;
  };
  it('is refused above net.core.somaxconn, naming the field', () => {
    assert.throws(
      () => checkListenBacklog(8192, somaxconn('4096\n')),
      (e: unknown) => e instanceof ConfigError && e.problems[0].field === 'proxy.listenBacklog' && /4096/.test(e.problems[0].rule),
    );
    checkListenBacklog(4096, somaxconn('4096\n'));
  });
});

describe('handshake failures', () => {
  const err = (code: string, message = code) => Object.assign(new Error(message), { code });
  it('are classed by whose limit it was', () => {
    assert.deepEqual(
      [
        err('ECONNREFUSED'),
        err('ECONNRESET'),
        err('ETIMEDOUT'),
        new Error('Opening handshake has timed out'),
        err('EADDRNOTAVAIL'),
        err('EMFILE'),
        err('ENFILE'),
        err('ENOBUFS'),
        new Error('Unexpected server response: 503'),
        err('ERR_SSL_WRONG_VERSION_NUMBER'),
        new Error('?'),
      ].map(classifyHandshakeError),
      [
        'refused',
        'reset',
        'connect_timeout',
        'handshake_timeout',
        'eaddrnotavail',
        'emfile',
        'enfile',
        'enobufs',
        'http_503',
        'tls',
        'other',
      ],
    );
  });
});

describe('limits outside the client', () => {
  it("nginx's error log names the limit it hit", () => {
    const log = [
      '2026/11/26 07:37:32 [alert] 25825#25825: 1024 worker_connections are not enough',
      '2026/11/26 07:37:32 [alert] 25825#25825: 1024 worker_connections are not enough',
      '2026/11/26 07:37:33 [crit] 25825#25825: *9 connect() to 127.0.0.1:8080 failed (99: Cannot assign requested address) while connecting to upstream',
      '2026/11/26 07:37:34 [notice] 25825#25825: signal process started',
    ].join('\n');
    assert.deepEqual(nginxLimitsHit(log), {
      'worker_connections are not enough': 2,
      'no free local port towards an upstream (EADDRNOTAVAIL)': 1,
    });
  });
});
