import { ApiPublisher } from './api-publisher';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { peakConnections, type LoadProfile } from '../shared/profile';
import { DeliveryLedger, type SerializedLedger } from './delivery';
import { HandshakeGate } from './handshake-gate';
import { FaultLog, type FaultEvent } from './faults';
import { Stats, type IntervalHistograms, type SerializedCounts, type SerializedStats } from './stats';
import { TokenSource } from './tokens';
import { VirtualUser, type RunContext } from './virtual-user';
import { sharedSecureContext, targetOf } from './connector';
import { urlFor } from './wire';
import { payloadSource } from './payloads';

export interface RunnerOptions {
  url: string;
  profile: LoadProfile;
  ca?: Buffer;
  insecure: boolean;
  /** This process's share: it owns global indices workerIndex, workerIndex + workerCount, ... */
  workerIndex: number;
  workerCount: number;
}

/** What a runner reports every second (and once at the end). */
export interface Snapshot {
  /** Cumulative counts of this process (with its histograms in the final snapshot). */
  stats: SerializedCounts;
  /** RTTs and push latencies of the last interval only, for the timeline's percentiles. */
  interval: IntervalHistograms;
  /** Event-loop lag p99 and max (ms) and CPU use (% of one core) over the interval. */
  loopLagP99Ms: number;
  loopLagMaxMs: number;
  cpuPercent: number;
  /** Virtual users this process has now (the target it is driving at). */
  users: number;
  /** 1, 2, 3…: snapshots of different workers with the same number cover the same second. */
  seq: number;
  /** Milliseconds this snapshot's interval covers (the last one is usually shorter). */
  intervalMs: number;
  done: boolean;
  /** This process's delivery ledger: in the final snapshot only. */
  ledger?: SerializedLedger;
  /** When this process's share of the first stage was all open (ms after its start), if it was: in the final snapshot. */
  firstStageOpenMs?: number;
}

/** The last snapshot: everything the process measured. */
export interface FinalSnapshot extends Snapshot {
  stats: SerializedStats;
}

const TICK_MS = 20;
/** The settle ends once nothing has arrived for this long. */
const SETTLE_QUIET_MS = 1_000;

/** The share of a count that worker `w` of `n` owns when indices are dealt round-robin. */
function shareOf(total: number, w: number, n: number): number {
  return Math.floor(total / n) + (w < total % n ? 1 : 0);
}

/**
 * Drives one process's virtual users through the profile's stages: ramps towards each stage's
 * target at its rate (opening or retiring users), holds, then ends; the whole run is bounded
 * by maxDurationMs.
 */
export class Runner {
  readonly stats = new Stats();
  private readonly users: VirtualUser[] = [];
  private stopping = false;
  private settling = false;
  private readonly ledger = new DeliveryLedger();
  private readonly lag = monitorEventLoopDelay({ resolution: 10 });
  private cpuMark = process.cpuUsage();
  private cpuMarkAt = performance.now();
  private seq = 0;
  private readonly faults = new FaultLog();
  private readonly runId = randomBytes(4).toString('hex');

  constructor(private readonly options: RunnerOptions) {}

  /** A fault was injected now: closes on its replica from here on are its own. */
  addFault(event: FaultEvent): void {
    this.faults.add(event);
  }

  private context(): RunContext {
    const { profile } = this.options;
    const totalPeak = peakConnections(profile);
    const senders = Math.round(totalPeak * profile.senderFraction);
    const addresses = profile.sourceAddresses;
    return {
      url: urlFor(this.options.url, profile.protocol),
      profile,
      stats: this.stats,
      ca: this.options.ca,
      target: targetOf(this.options.url),
      secureContext: sharedSecureContext(this.options.ca),
      insecure: this.options.insecure,
      // Senders are spread evenly over the index range (and so over workers).
      isSender: (i) => senders > 0 && Math.floor((i * senders) / totalPeak) !== Math.floor(((i + 1) * senders) / totalPeak),
      publishRatePerSender: senders > 0 ? profile.publishRate / senders : 0,
      sourceAddressFor: (i) => (addresses.length ? addresses[i % addresses.length] : undefined),
      running: () => !this.stopping,
      publishing: () => !this.settling && !this.stopping,
      ledger: this.ledger,
      // The profile's cap is for the whole run: each process takes its share.
      gate: new HandshakeGate(Math.max(1, Math.ceil(profile.maxHandshakesInFlight / this.options.workerCount))),
      faultOn: (replica) => this.faults.on(replica),
      faultOfKind: (kind) => this.faults.ofKind(kind),
      faultRefusing: () => this.faults.refusing(),
      runId: this.runId,
      tokens: profile.tokens ? new TokenSource(profile.tokens) : undefined,
      payloads: payloadSource(profile.payload),
      publisher: profile.publishApi
        ? new ApiPublisher(this.options.url, profile.publishApi.keyFile, { ca: this.options.ca, insecure: this.options.insecure })
        : undefined,
    };
  }

  /** Runs the stages; `onTick` gets a snapshot each second. Resolves with the final snapshot. */
  async run(onTick: (s: Snapshot) => void, signal?: AbortSignal): Promise<FinalSnapshot> {
    const { profile, workerIndex, workerCount } = this.options;
    const ctx = this.context();
    if (ctx.tokens) {
      const peak = shareOf(peakConnections(profile), workerIndex, workerCount);
      const users = Array.from({ length: peak }, (_, k) => workerIndex + k * workerCount).map((index) => ({
        index,
        sender: ctx.isSender(index),
      }));
      await ctx.tokens.prefetch(users, () => this.stats.counters.tokens++);
    }
    this.lag.enable();
    const started = performance.now();
    const deadline = started + profile.maxDurationMs;
    let level = 0;
    let nextTickAt = started + 1000;
    // The first stage's ramp, as achieved: when this process's share of it was all open.
    const firstShare = shareOf(profile.stages[0].connections, workerIndex, workerCount);
    let firstStageOpenMs: number | undefined;

    const setUsers = async (target: number) => {
      while (this.users.length < target) {
        const index = workerIndex + this.users.length * workerCount;
        const user = new VirtualUser(index, ctx);
        this.users.push(user);
        user.start();
      }
      const retiring = this.users.splice(target);
      await Promise.all(retiring.map((u) => u.stop()));
    };
    const tick = () => {
      const now = performance.now();
      if (firstStageOpenMs === undefined && this.stats.open >= firstShare) firstStageOpenMs = now - started;
      if (now >= nextTickAt) {
        nextTickAt += 1000;
        onTick(this.snapshot(false));
      }
    };
    const sleep = () => new Promise((r) => setTimeout(r, TICK_MS));
    const over = () => signal?.aborted || performance.now() >= deadline;

    for (const stage of profile.stages) {
      if (over()) break;
      const target = shareOf(stage.connections, workerIndex, workerCount);
      const rate = stage.rampRate / workerCount;
      const from = level;
      const rampStart = performance.now();
      while (level !== target && !over()) {
        const elapsed = (performance.now() - rampStart) / 1000;
        const moved = Math.floor(elapsed * rate) + 1;
        level = from < target ? Math.min(target, from + moved) : Math.max(target, from - moved);
        await setUsers(level);
        tick();
        await sleep();
      }
      const holdUntil = performance.now() + stage.holdMs;
      while (performance.now() < holdUntil && !over()) {
        tick();
        await new Promise((r) => setTimeout(r, Math.min(100, holdUntil - performance.now())));
      }
    }

    // Publications in flight arrive before anyone leaves: until a quiet second, at most settleMs.
    // An interrupted run settles too: its account owes every acknowledged publication, and one
    // acknowledged a moment ago may still be on its way to subscribers on a slower replica.
    this.settling = true;
    const settleUntil = performance.now() + (profile.publishRate > 0 ? profile.settleMs : 0);
    let heard = this.stats.counters.notifications;
    let quietSince = performance.now();
    while (performance.now() < settleUntil && performance.now() - quietSince < SETTLE_QUIET_MS) {
      tick();
      await new Promise((r) => setTimeout(r, 100));
      if (this.stats.counters.notifications !== heard) {
        heard = this.stats.counters.notifications;
        quietSince = performance.now();
      }
    }
    // The generator is judged up to here: the teardown (every connection closed at once) measures
    // nothing, and its burst of closes would otherwise count as a lagging interval.
    this.lag.disable();
    const measured = this.load();
    this.stopping = true;
    await setUsers(0);
    ctx.publisher?.close();
    const final: FinalSnapshot = { ...this.snapshot(true, measured), stats: this.stats.serialize() };
    final.ledger = this.ledger.serialize();
    final.firstStageOpenMs = firstStageOpenMs;
    onTick(final);
    return final;
  }

  /** This process's own load since the last snapshot: event-loop lag and CPU. */
  private load(): Pick<Snapshot, 'loopLagP99Ms' | 'loopLagMaxMs' | 'cpuPercent'> {
    const cpu = process.cpuUsage(this.cpuMark);
    const intervalMs = Math.max(1, performance.now() - this.cpuMarkAt);
    return {
      loopLagP99Ms: this.lag.percentile(99) / 1e6,
      loopLagMaxMs: this.lag.max / 1e6,
      cpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / intervalMs) * 100),
    };
  }

  /** The stats so far and this interval's; `load` when it was measured earlier (before the teardown). */
  private snapshot(done: boolean, load = this.load()): Snapshot {
    const now = performance.now();
    const snapshot: Snapshot = {
      stats: this.stats.counts(),
      interval: this.stats.takeInterval(),
      ...load,
      users: this.users.length,
      seq: ++this.seq,
      intervalMs: Math.max(1, now - this.cpuMarkAt),
      done,
    };
    this.cpuMark = process.cpuUsage();
    this.cpuMarkAt = now;
    this.lag.reset();
    return snapshot;
  }
}
