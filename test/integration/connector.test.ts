import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { runLoad } from '../../app/src/client/coordinator';
import { lookup } from 'node:dns';
import { connectTcp, rememberingLookup, targetOf, TCP_CANCELLED } from '../../app/src/client/connector';
import { classifyHandshakeError } from '../../app/src/client/connect-errors';
import { loadProfileSchema } from '../../app/src/shared/profile';
import { makeTestCerts } from '../helpers/certs';
import { sleep, startServer } from '../helpers/server';

/** A listener that never accepts (its process is blocked): once its queue is full, SYNs are dropped. */
const STUCK_LISTENER = `
const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  console.log(s.address().port);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000);
});`;

const tcp = (port: number, timeoutMs = 5000) =>
  new Promise<{ error?: Error; socket?: Socket; ms: number }>((resolve) => {
    const started = performance.now();
    connectTcp(targetOf(`wss://localhost:${port}/`), undefined, timeoutMs, (error, socket) =>
      resolve({ error, socket, ms: performance.now() - started }),
    );
  });

describe('the connector: TCP first, the WebSocket only once TCP is up', () => {
  it('reads host, port, TLS and SNI from the URL', () => {
    assert.deepEqual(targetOf('wss://example.test/ws'), { host: 'example.test', port: 443, secure: true, servername: 'example.test' });
    assert.deepEqual(targetOf('ws://127.0.0.1:8080/ws'), { host: '127.0.0.1', port: 8080, secure: false, servername: undefined });
    assert.deepEqual(targetOf('wss://[::1]:9443/'), { host: '::1', port: 9443, secure: true, servername: undefined });
  });

  it("reuses a host's addresses for a few seconds, in both of dns.lookup's answer forms; a failure is asked again", async () => {
    let asked = 0;
    // The failing host fails here, not at a DNS server: the tests send nothing past loopback.
    const remembered = rememberingLookup((host, options, callback) => {
      asked++;
      if (host === 'no-such-host.invalid')
        return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), []);
      lookup(host, options, callback);
    });
    const ask = (host: string, all: boolean) =>
      new Promise<{ error: Error | null; answer: unknown; family?: number }>((resolve) =>
        remembered(host, { all }, (error, answer, family) => resolve({ error, answer, family })),
      );
    const one = await ask('localhost', false);
    assert.equal(one.error, null);
    assert.ok(typeof one.answer === 'string' && [4, 6].includes(one.family!), `one address: ${JSON.stringify(one)}`);
    const all = await ask('localhost', true);
    assert.ok(Array.isArray(all.answer) && all.answer.some((a: { address: string }) => a.address === one.answer));
    assert.equal(asked, 1, 'the second question was answered from memory');
    assert.ok((await ask('no-such-host.invalid', false)).error);
    assert.ok((await ask('no-such-host.invalid', false)).error);
    assert.equal(asked, 3, 'failures are asked again');
  });

  it('a refused connect fails as refused', async () => {
    const closed = createNetServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const out = await tcp(port);
    assert.equal(classifyHandshakeError(out.error!), 'refused');
    assert.equal(out.socket, undefined);
  });

  /** A port whose connects hang (never over loopback's limits: only this test's listener). */
  async function stuckPort(t: { after(fn: () => void): void }): Promise<number> {
    const stuck = spawn(process.execPath, ['-e', STUCK_LISTENER], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => stuck.kill('SIGKILL'));
    const [line] = (await once(stuck.stdout, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const fillers = Array.from({ length: 4 }, () => netConnect(port, '127.0.0.1').on('error', () => undefined));
    t.after(() => fillers.forEach((f) => f.destroy()));
    await sleep(200);
    return port;
  }

  it('a connect that never completes times out as a handshake timeout', async (t) => {
    const out = await tcp(await stuckPort(t), 300);
    assert.equal(classifyHandshakeError(out.error!), 'handshake_timeout', out.error?.message);
    assert.ok(out.ms >= 290 && out.ms < 2000, `${out.ms} ms`);
  });

  it('cancel ends a pending connect, and its callback hears it', async (t) => {
    const port = await stuckPort(t);
    const heard = new Promise<Error | undefined>((resolve) => {
      const pending = connectTcp(targetOf(`wss://127.0.0.1:${port}/`), undefined, 5000, (error) => resolve(error));
      setTimeout(() => pending.cancel(), 50);
    });
    assert.equal((await heard)?.message, TCP_CANCELLED);
  });

  it('through the load client: TLS verified, sessions resumed on reconnect, the source address kept', async (t) => {
    const certs = makeTestCerts();
    const s = await startServer({}, 'tls-0');
    const https = createHttpsServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) });
    const peers = new Set<string>();
    const sockets = new Set<Socket>();
    https.on('upgrade', (req, socket, head) => {
      peers.add(req.socket.remoteAddress ?? '');
      sockets.add(socket as Socket);
      s.server.http.emit('upgrade', req, socket, head);
    });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    t.after(async () => {
      https.close();
      await s.stop();
    });
    const load = runLoad({
      url: `wss://localhost:${(https.address() as AddressInfo).port}/ws-notifications`,
      ca: readFileSync(certs.caCert),
      insecure: false,
      workers: 1,
      profile: loadProfileSchema.parse({
        stages: [{ connections: 10, rampRate: 100, holdMs: 2500 }],
        senderFraction: 0,
        topics: 0,
        publishRate: 0,
        sourceAddresses: ['127.0.0.2'],
        reconnect: { enabled: true, initialDelayMs: 100, maxDelayMs: 400 },
      }),
    });
    await sleep(1200);
    for (const socket of sockets) socket.destroy(); // every connection cut: each user reconnects
    const { stats } = await load;
    assert.equal(stats.counters.opened, 20, JSON.stringify(Object.fromEntries(stats.errors)));
    assert.equal(stats.counters.tlsResumed, 10, 'every reconnect resumed its own session');
    assert.deepEqual([...peers], ['127.0.0.2']);
    assert.ok(stats.histograms.tls.totalCount === 20 && stats.histograms.tcp.totalCount === 20);
  });

  it('through the load client: a certificate for another name, or from another CA, is refused as tls', async (t) => {
    // The client answers Node's identity check with the leaf certificate alone (virtual-user.ts): the name is still checked.
    const certs = makeTestCerts();
    const listen = async (host: string) => {
      const https = createHttpsServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) });
      await new Promise<void>((r) => https.listen(0, host, r));
      t.after(() => https.close());
      return `wss://${host}:${(https.address() as AddressInfo).port}/ws-notifications`;
    };
    const attempt = async (url: string, ca: string) => {
      const { stats } = await runLoad({
        url,
        ca: readFileSync(ca),
        insecure: false,
        workers: 1,
        profile: loadProfileSchema.parse({
          stages: [{ connections: 3, rampRate: 100, holdMs: 500 }],
          senderFraction: 0,
          topics: 0,
          publishRate: 0,
          reconnect: { enabled: false },
        }),
      });
      return { opened: stats.counters.opened, errors: Object.fromEntries(stats.errors) };
    };
    // 127.0.0.2 is loopback, but not among the certificate's names (localhost, ws-nginx, 127.0.0.1).
    assert.deepEqual(await attempt(await listen('127.0.0.2'), certs.caCert), { opened: 0, errors: { tls: 3 } }, 'another name');
    // Its own name, signed by a CA the client was not given.
    assert.deepEqual(await attempt(await listen('127.0.0.1'), makeTestCerts().caCert), { opened: 0, errors: { tls: 3 } }, 'another CA');
  });
});
