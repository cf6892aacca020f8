/**
 * Planned 1001 closes that are not a drain: the connections of nginx workers a reload retired,
 * and rebalance rounds. Each connection gets its own random moment inside a window, so the
 * clients come back as a wave their reconnect backoff absorbs, not as a storm.
 */

/** What shedding needs of a connection. */
export interface Sheddable {
  /** The nginx worker carrying the connection (from the handshake header), if any. */
  readonly via?: { readonly proxy: string; readonly pid: number };
  /** Sends 1001 with a reason (only while open). */
  goAway(reason: string): void;
}

type Reason = 'reload' | 'rebalance';

/** One group of connections closed over one window: a reload's retired workers, or a rebalance round. */
class Wave<P extends Sheddable> {
  private readonly timers = new Map<P, NodeJS.Timeout>();
  private startAt: number;
  private endAt: number;

  constructor(
    readonly reason: Reason,
    delayMs: number,
    windowMs: number,
    private readonly fire: (peer: P, wave: Wave<P>) => void,
  ) {
    this.startAt = Date.now() + delayMs;
    this.endAt = this.startAt + windowMs;
  }

  get size(): number {
    return this.timers.size;
  }

  peers(): IterableIterator<P> {
    return this.timers.keys();
  }

  /** Gives the peer a random moment in what is left of the window. */
  add(peer: P): void {
    clearTimeout(this.timers.get(peer));
    const from = Math.max(Date.now(), this.startAt);
    const at = from + Math.random() * Math.max(0, this.endAt - from);
    this.timers.set(
      peer,
      setTimeout(() => {
        this.timers.delete(peer);
        this.fire(peer, this);
      }, at - Date.now()),
    );
  }

  delete(peer: P): boolean {
    clearTimeout(this.timers.get(peer));
    return this.timers.delete(peer);
  }

  /** Starts now, over a new window (too many waves are waiting). */
  hurry(windowMs: number): void {
    if (this.startAt <= Date.now()) return;
    this.startAt = Date.now();
    this.endAt = this.startAt + windowMs;
    for (const peer of [...this.timers.keys()]) this.add(peer);
  }

  get started(): boolean {
    return this.startAt <= Date.now();
  }

  /** When its last 1001 is due (epoch ms). */
  get endsAt(): number {
    return this.endAt;
  }

  /** When its first 1001 may go (epoch ms). */
  get startsAt(): number {
    return this.startAt;
  }

  cancel(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}

export interface ShedCounts {
  /** Connections through retired proxy workers still open. */
  retired: number;
  /** Distinct retired proxy workers still holding connections here. */
  retiredWorkers: number;
  /** Connections with a 1001 planned (any reason). */
  shedding: number;
}

/**
 * The replica's planned closes. A connection is in at most one wave. `onShed` is told of each
 * close it sends, with its reason, for the metrics.
 */
export class Shedding<P extends Sheddable> {
  private readonly waves: Wave<P>[] = [];
  private readonly waveOf = new Map<P, Wave<P>>();
  /** proxy → retired worker pid → the wave its connections belong to (late handshakes join it). */
  private readonly retired = new Map<string, Map<number, Wave<P>>>();

  constructor(private readonly onShed: (reason: Reason) => void) {}

  /**
   * A reload happened: `workers` are the proxy's current workers (none: the proxy is stopping).
   * Every connection through another worker of that proxy joins one new wave, starting after
   * `shedAfterMs`, unless a wave that starts no later already holds it (a stop after a reload
   * moves the reload's waiting connections up). Only `maxStaleGenerations` reload waves may
   * wait; older ones start at once.
   */
  retire(
    peers: Iterable<P>,
    a: { proxy: string; workers: number[]; retired: number[]; shedAfterMs: number; windowMs: number; maxStaleGenerations: number },
  ): number {
    const current = new Set(a.workers);
    const wave = new Wave<P>('reload', a.shedAfterMs, a.windowMs, (p, w) => this.fired(p, w));
    const pids = this.retiredPids(a.proxy);
    // Retired workers holding nothing here yet: a handshake still in flight through one joins this wave.
    for (const pid of a.retired) if (!current.has(pid) && !pids.has(pid)) pids.set(pid, wave);
    let scheduled = 0;
    for (const peer of peers) {
      const via = peer.via;
      const earlier = this.waveOf.get(peer);
      if (!via || via.proxy !== a.proxy || current.has(via.pid) || (earlier && earlier.startsAt <= wave.startsAt)) continue;
      const known = pids.get(via.pid);
      if (!known || wave.startsAt < known.startsAt) pids.set(via.pid, wave);
      this.join(peer, pids.get(via.pid)!);
      scheduled++;
    }
    // A pid may have been reused by a current worker; it is not retired any more.
    for (const pid of current) pids.delete(pid);
    if (wave.size > 0) this.waves.push(wave);
    const waiting = this.waves.filter((w) => w.reason === 'reload' && !w.started);
    for (const old of waiting.slice(0, Math.max(0, waiting.length - a.maxStaleGenerations))) old.hurry(a.windowMs);
    return scheduled;
  }

  /**
   * A rebalance round: `count` connections picked at random, over the window. Connections a
   * reload wave is still holding may be picked (they would be closed later anyway); those
   * already closing are not.
   */
  shed(peers: Iterable<P>, count: number, windowMs: number): number {
    const free = [...peers].filter((p) => {
      const wave = this.waveOf.get(p);
      return !wave || (wave.reason === 'reload' && !wave.started);
    });
    const wave = new Wave<P>('rebalance', 0, windowMs, (p, w) => this.fired(p, w));
    for (let i = 0; i < Math.min(count, free.length); i++) {
      const j = i + Math.floor(Math.random() * (free.length - i));
      [free[i], free[j]] = [free[j], free[i]];
      this.join(free[i], wave);
    }
    if (wave.size > 0) this.waves.push(wave);
    return wave.size;
  }

  /** A new connection: one that came through a retired worker (a handshake in flight at the reload) joins its wave. */
  opened(peer: P): void {
    const wave = peer.via && this.retired.get(peer.via.proxy)?.get(peer.via.pid);
    if (!wave) return;
    if (!this.waves.includes(wave)) this.waves.push(wave);
    this.join(peer, wave);
  }

  closed(peer: P): void {
    const wave = this.waveOf.get(peer);
    if (!wave) return;
    this.waveOf.delete(peer);
    wave.delete(peer);
    this.forgetIfEmpty(wave);
  }

  counts(): ShedCounts {
    let retired = 0;
    let shedding = 0;
    const workers = new Set<string>();
    for (const wave of this.waves) {
      shedding += wave.size;
      if (wave.reason !== 'reload') continue;
      retired += wave.size;
      for (const peer of wave.peers()) workers.add(`${peer.via!.proxy}/${peer.via!.pid}`);
    }
    return { retired, retiredWorkers: workers.size, shedding };
  }

  /** Stops every plan (the replica is stopping or draining, which closes everyone itself). */
  cancel(): void {
    for (const wave of this.waves) wave.cancel();
    this.waves.length = 0;
    this.waveOf.clear();
    this.retired.clear();
  }

  /**
   * The proxy's retired pids and their waves, less those of waves that never held anything and
   * whose window is over (their workers are about to exit; nothing in flight is that late).
   */
  private retiredPids(proxy: string): Map<number, Wave<P>> {
    const pids = this.retired.get(proxy) ?? new Map<number, Wave<P>>();
    this.retired.set(proxy, pids);
    for (const [pid, wave] of pids) if (wave.size === 0 && wave.endsAt < Date.now()) pids.delete(pid);
    return pids;
  }

  private join(peer: P, wave: Wave<P>): void {
    const before = this.waveOf.get(peer);
    if (before && before !== wave) {
      before.delete(peer);
      this.forgetIfEmpty(before);
    }
    this.waveOf.set(peer, wave);
    wave.add(peer);
  }

  private fired(peer: P, wave: Wave<P>): void {
    this.waveOf.delete(peer);
    this.onShed(wave.reason);
    peer.goAway(wave.reason === 'reload' ? 'proxy reloaded: reconnect' : 'rebalancing: reconnect');
    this.forgetIfEmpty(wave);
  }

  private forgetIfEmpty(wave: Wave<P>): void {
    if (wave.size > 0) return;
    const i = this.waves.indexOf(wave);
    if (i >= 0) this.waves.splice(i, 1);
    // Its workers have nothing left here; a pid nginx reuses later is a new worker.
    for (const pids of this.retired.values()) for (const [pid, w] of pids) if (w === wave) pids.delete(pid);
  }
}
