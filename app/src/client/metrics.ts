import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Progress } from './timeline';

/**
 * An optional /metrics endpoint while the load runs (`--metrics-port`), for Prometheus to scrape
 * beside the servers' own metrics. Updated once a second from the run's progress.
 */
export class LoadMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];
  private readonly open = new Gauge({ name: 'load_connections_open', help: 'Open connections of the load client.', registers: this.r });
  private readonly users = new Gauge({ name: 'load_users', help: 'Simulated clients the load is driving (target).', registers: this.r });
  private readonly sent = new Counter({ name: 'load_messages_sent_total', help: 'Messages sent by the load client.', registers: this.r });
  private readonly received = new Counter({
    name: 'load_messages_received_total',
    help: 'Messages received by the load client.',
    registers: this.r,
  });
  private readonly errors = new Counter({
    name: 'load_errors_total',
    help: 'Handshake failures and other errors of the load client.',
    registers: this.r,
  });
  private readonly unexpected = new Counter({
    name: 'load_unexpected_closes_total',
    help: 'Connections closed by the server or the network.',
    registers: this.r,
  });
  private readonly reconnects = new Counter({ name: 'load_reconnects_total', help: 'Reconnect attempts.', registers: this.r });
  private readonly rtt = new Gauge({
    name: 'load_rtt_seconds',
    help: 'Echo round-trip time over the last second (corrected for coordinated omission).',
    labelNames: ['quantile'] as const,
    registers: this.r,
  });
  private readonly server: Server;
  private last = { sent: 0, received: 0, errors: 0, unexpected: 0, reconnects: 0 };

  constructor() {
    this.server = createServer(async (req, res) => {
      if ((req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(await this.registry.metrics());
    });
  }

  listen(port: number, host = '0.0.0.0'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as { port: number }).port));
    });
  }

  update(p: Progress): void {
    this.open.set(p.open);
    this.users.set(p.users);
    const inc = (counter: Counter, key: keyof typeof this.last, total: number) => {
      if (total > this.last[key]) counter.inc(total - this.last[key]);
      this.last[key] = total;
    };
    inc(this.sent, 'sent', p.sentTotal);
    inc(this.received, 'received', p.receivedTotal);
    inc(this.errors, 'errors', p.errors);
    inc(this.unexpected, 'unexpected', p.unexpectedCloses);
    inc(this.reconnects, 'reconnects', p.reconnects);
    this.rtt.set({ quantile: '0.5' }, p.rttP50 / 1000);
    this.rtt.set({ quantile: '0.99' }, p.rttP99 / 1000);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections(); // a scraper's keep-alive must not hold the exit
    });
  }
}
