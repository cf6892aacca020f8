import type { Duplex } from 'node:stream';

/**
 * Frames due for one socket in one turn of the event loop leave in one write: the socket is
 * corked at its first frame of the turn and uncorked once the turn's I/O callbacks have run
 * (setImmediate). Node then hands them to the kernel in one writev, so nginx can read them at once
 * and relay them in one TLS record. ws writes every frame at once and batches nothing itself;
 * its own cork around a frame's header and payload is undone before `send` returns, so a socket
 * still corked here is one this turn already holds.
 */
let held: Duplex[] = [];

/** Holds `socket`'s writes until the end of this turn (once per socket and turn). */
export function holdForTurn(socket: Duplex): void {
  if (socket.writableCorked > 0) return;
  socket.cork();
  if (held.push(socket) === 1) setImmediate(releaseTurn);
}

function releaseTurn(): void {
  const sockets = held;
  held = [];
  for (const socket of sockets) socket.uncork();
}
