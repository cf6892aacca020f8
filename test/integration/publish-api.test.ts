import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createReplica } from '../../app/src/server/replica';
import { serverSchema, toServerEnv } from '../../app/src/topology';
import { brokerReplica, startNats } from '../helpers/nats';
import { eventually, metricValue, TestClient } from '../helpers/server';
import { ROOT } from '../helpers/synth';
import { scratchDir } from '../helpers/scratch';

const KEY = 'test-key-0123456789abcdef';

describe('the publish API for backends (POST /api/publish)', () => {
  it('stores through the broker and answers 202 with the offset; every replica delivers; a repeated id is stored once', async (t) => {
    const nats = await startNats();
    const [a, b] = [
      await brokerReplica(nats, 'replica-a', {}, { apiKey: KEY }),
      await brokerReplica(nats, 'replica-b', {}, { apiKey: KEY }),
    ];
    t.after(async () => {
      await Promise.all([a.server.stop(), b.server.stop()]);
      await nats.stop();
    });
    const subscriber = await TestClient.open(`ws://127.0.0.1:${b.port}/ws-notifications`);
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    const post = (body: unknown, key = KEY) =>
      fetch(`http://127.0.0.1:${a.port}/api/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    const first = await post({ topic: 'orders', data: { n: 1 }, id: 'order-1' });
    assert.equal(first.status, 202);
    const stored = (await first.json()) as { offset: number };
    assert.equal(typeof stored.offset, 'number');
    const again = (await (await post({ topic: 'orders', data: { n: 1 }, id: 'order-1' })).json()) as { offset: number };
    assert.equal(again.offset, stored.offset, 'the repeated id is the same stored publication');
    const n = await subscriber.next('notification');
    assert.deepEqual([n.data, n.offset, n.replica], [{ n: 1 }, stored.offset, 'replica-a']);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(subscriber.messages.filter((m) => m.type === 'notification').length, 1, 'delivered once');
    // The publisher's clock travels to the subscribers, as a WebSocket publish's does.
    assert.equal((await post({ topic: 'orders', data: { n: 2 }, id: 'order-2', ts: 1_700_000_000_123 })).status, 202);
    assert.equal((await subscriber.next('notification')).ts, 1_700_000_000_123);

    // Bad input: a 4xx naming the field.
    const refused = async (res: Promise<Response>, status: number, field: string) => {
      const r = await res;
      assert.equal(r.status, status);
      assert.equal(((await r.json()) as { field: string }).field, field);
    };
    await refused(post({ topic: 'orders', data: 1 }, 'wrong-key-0123456789'), 401, 'Authorization');
    await refused(post('{not json'), 400, '(body)');
    await refused(post({ topic: 'no spaces allowed', data: 1 }), 400, 'topic');
    await refused(post({ topic: 'a..b', data: 1 }), 400, 'topic');
    await refused(post({ topic: 'orders' }), 400, 'data');
    await refused(post({ topic: 'orders', data: 1, id: {} }), 400, 'id');
    await refused(post({ topic: 'orders', data: 1, ts: 'yesterday' }), 400, 'ts');
    await refused(post({ topic: 'orders', data: 1, ts: -5 }), 400, 'ts');
    await refused(post({ topic: 'orders', data: 'x'.repeat(65_600) }), 413, 'data');
    // Past the body's own limit the rest is not read, so no field can be named.
    await refused(post({ topic: 'orders', data: 'x'.repeat(70_000) }), 413, '(body)');
    subscriber.close();
  });

  it('answers 503 and stores nothing while the broker is down', async (t) => {
    const nats = await startNats();
    const { server, port, metrics } = await brokerReplica(nats, 'replica-a', {}, { apiKey: KEY });
    t.after(() => server.stop());
    await nats.stop();
    // Once the replica knows the broker is gone, nothing is sent: the refusal is certain.
    await eventually(async () => (await metricValue(metrics.brokerConnected)) === 0, 5_000, 'the replica saw the broker go');
    const r = await fetch(`http://127.0.0.1:${port}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ topic: 'orders', data: 1 }),
    });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(((await r.json()) as { error: string }).error, 'broker_unavailable');
  });

  it('takes a body whose characters arrive split between two chunks', async (t) => {
    const { server } = createReplica({ ...serverSchema.parse({}), replicaId: 'x' }, { logLevel: 'silent', apiKey: KEY });
    const { port } = await server.listen(0, '127.0.0.1');
    t.after(() => server.stop());
    const subscriber = await TestClient.open(`ws://127.0.0.1:${port}/ws-notifications`);
    subscriber.send({ type: 'subscribe', topic: 'orders' });
    await subscriber.next('subscribed');
    const body = Buffer.from(JSON.stringify({ topic: 'orders', data: 'café crème' }));
    const cut = body.indexOf(0xa9); // inside the first "é" (0xc3 0xa9)
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/api/publish',
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'content-length': body.length },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, cut));
      setTimeout(() => req.end(body.subarray(cut)), 100);
    });
    assert.equal(status, 202);
    assert.equal((await subscriber.next('notification')).data, 'café crème');
    subscriber.close();
  });

  it('is off without a key (404), and a replica given an unreadable key file refuses to start, naming the variable (exit 2)', async (t) => {
    const { server } = createReplica({ ...serverSchema.parse({}), replicaId: 'x' }, { logLevel: 'silent' });
    const { port } = await server.listen(0, '127.0.0.1');
    t.after(() => server.stop());
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', body: '{}' })).status, 404);
    const short = join(scratchDir('ws-key-'), 'key');
    writeFileSync(short, 'short\n');
    for (const file of ['/nonexistent/key', short]) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'app/src/server/main.ts'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, ...toServerEnv(serverSchema.parse({ port: 1, apiKeyFile: file }), 'k'), WS_AUTH_MODE: 'none' },
        timeout: 20_000,
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /WS_API_KEY_FILE: /);
    }
  });
});
