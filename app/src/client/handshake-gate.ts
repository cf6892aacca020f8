/**
 * Caps the handshakes one process has in flight. Opening faster than the target completes
 * handshakes only queues them inside the client (in its event loop, its TLS work, the kernel's
 * backlog), and connect times then measure that queue. With the cap, a handshake starts when a
 * slot is free: connect time is the target's, the wait for a slot is reported apart, and the
 * achieved opening rate shows what the target sustained.
 */
export class HandshakeGate {
  private inFlight = 0;
  private readonly waiting: ((release: () => void) => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`HandshakeGate: limit must be a whole number ≥ 1, not ${limit}`);
  }

  /** Runs `start` once a slot is free; it gets `release`, to call once the handshake ended (idempotent). */
  enter(start: (release: () => void) => void): void {
    if (this.inFlight < this.limit) {
      this.inFlight++;
      this.run(start);
    } else this.waiting.push(start);
  }

  private run(start: (release: () => void) => void): void {
    let released = false;
    start(() => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes to the next in line (not nested in the caller's stack: a chain of
      // handshakes that end at once stays flat), or frees.
      if (next) queueMicrotask(() => this.run(next));
      else this.inFlight--;
    });
  }

  /** Handshakes waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }
}
