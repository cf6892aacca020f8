import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Centrifuge } from 'centrifuge';
import { defineTopology } from '../../app/src/topology';
import { CENTRIFUGE_PATH } from '../../app/src/shared/centrifuge';
import { devUserToken } from '../../app/src/idp/tokens';
import { DEV_ROLES } from '../../app/src/topology/auth';
import { nginxVersion, startLocalRun, type LocalRun } from '../../local/run';
import { Recorder, sdkClient } from '../helpers/centrifuge-sdk';
import { publishVia } from '../helpers/publish';
import { eventually } from '../helpers/server';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');

/** A publication through a replica's API, retried while the broker restarts. */
const publish = (local: LocalRun, replica: number, topic: string, data: unknown, id: string, onRefused?: () => void) =>
  publishVia(local, replica, { topic, data, id }, 50, onRefused);

/** The offsets a subscription's publication events carried, in order. */
const offsets = (r: Recorder) => r.seen.filter((s) => s.event === 'publication').map((s) => s.ctx.offset as number);

describe('the centrifuge SDK, unchanged, through nginx and TLS (Centrifugo client protocol)', () => {
  it('connects, subscribes on two replicas, receives, recovers after a replica kill and a broker restart, refreshes its token, is denied a forbidden channel, and holds a private one by subscription token', async (t) => {
    const local = await startLocalRun(
      defineTopology({
        replicas: 2,
        server: { pingIntervalMs: 2_000 },
        proxy: { nginxVersion: NGINX, balancing: { strategy: 'round_robin' } },
        broker: { enabled: true },
      }),
    );
    const clients: Centrifuge[] = [];
    t.after(async () => {
      for (const c of clients) c.disconnect();
      await local.stop();
    });
    const ca = readFileSync(local.caFile);
    const url = new URL(CENTRIFUGE_PATH, local.url).toString();
    const secret = readFileSync(local.idp!.secretFile, 'utf8').trim();
    let tokensIssued = 0;
    const tokenFor = (sub: string, roles: string[], ttlSeconds: number) => async () => {
      tokensIssued++;
      return (await devUserToken(local.idp!.issuer, secret, { sub, roles, ttlSeconds })).token;
    };

    // Two readers; round robin puts them on different replicas. Their tokens live 4 s: the SDK
    // refreshes them in-band through getToken, without a disconnect.
    const readers = ['alice', 'bob'].map((name) => {
      const client = sdkClient(url, ca, { getToken: tokenFor(name, [DEV_ROLES.reader], 4) });
      clients.push(client);
      const events = new Recorder(client, ['connecting', 'connected', 'disconnected', 'error']);
      const sub = client.newSubscription('news');
      const subEvents = new Recorder(sub, ['subscribing', 'subscribed', 'unsubscribed', 'publication', 'error']);
      sub.subscribe();
      client.connect();
      return { client, events, subEvents };
    });
    const connected = await Promise.all(readers.map((r) => r.events.wait('connected')));
    const homes = connected.map((c) => local.replicas.findIndex((r) => String(c.ctx.client).startsWith(`${r.id}-`)));
    assert.deepEqual([...homes].sort(), [0, 1], `one reader on each replica: ${connected.map((c) => c.ctx.client)}`);
    await Promise.all(readers.map((r) => r.subEvents.wait('subscribed')));

    // A publication through the API reaches both, with its offset.
    const first = await publish(local, 0, 'news', { n: 1 }, 'n-1');
    for (const r of readers) {
      const pub = await r.subEvents.wait('publication', (c) => c.offset === first);
      assert.deepEqual(pub.ctx.data, { n: 1 });
    }

    // Kill alice's replica: the SDK reconnects (to the other one) and recovers what was published meanwhile.
    const [alice, bob] = readers;
    const survivor = 1 - homes[0];
    const mark = alice.subEvents.seen.length;
    await local.stopReplica(homes[0], 'SIGKILL');
    await alice.events.wait('connecting', (c) => c.code !== 0);
    const missed: number[] = [];
    for (let n = 2; n <= 4; n++) missed.push(await publish(local, survivor, 'news', { n }, `n-${n}`));
    const resubscribed = await alice.subEvents.wait('subscribed', () => true, 20_000, mark);
    assert.equal(resubscribed.ctx.wasRecovering, true, 'the SDK asked to recover');
    assert.equal(resubscribed.ctx.recovered, true, 'and the server recovered every publication');
    await alice.subEvents.wait('publication', (c) => c.offset === missed.at(-1));

    // The broker restarts. A publication made while it is down is refused (503 broker_unavailable)
    // and sent again with the same id until it is back; then it reaches both, in order, with no gap.
    const down = local.broker!.process().exited;
    const restarted = local.broker!.restart(2_000);
    await down;
    let refused = 0;
    const after = await publish(local, survivor, 'news', { n: 5 }, 'n-5', () => refused++);
    await restarted;
    assert.ok(refused >= 1, 'the publication was made while the broker was down');
    for (const r of readers) await r.subEvents.wait('publication', (c) => c.offset === after);
    assert.deepEqual(offsets(alice.subEvents), offsets(bob.subEvents), 'both saw the same publications, once each, in order');
    assert.deepEqual(offsets(alice.subEvents), [first, ...missed, after]);
    for (const r of readers) {
      const unrecovered = r.subEvents.seen.filter((s) => s.event === 'subscribed' && s.ctx.wasRecovering && !s.ctx.recovered);
      assert.equal(unrecovered.length, 0, 'never "not recovered"');
    }

    // Tokens live 4 s: each reader's SDK refreshes in-band through getToken; bob (never cut) stays connected throughout.
    await eventually(() => tokensIssued >= 6, 15_000, `two refreshes per reader (${tokensIssued} tokens so far)`);
    assert.equal(bob.events.count('disconnected') + bob.events.count('connecting'), 1, `bob only connected once: ${bob.events.names()}`);

    // A channel no grant allows: the SDK's permission error (103), the subscription ends.
    const carol = sdkClient(url, ca, { getToken: tokenFor('carol', [], 60) });
    clients.push(carol);
    const forbidden = carol.newSubscription('user.bob.inbox');
    const forbiddenEvents = new Recorder(forbidden, ['subscribed', 'unsubscribed', 'error']);
    forbidden.subscribe();
    carol.connect();
    const ended = await forbiddenEvents.wait('unsubscribed');
    assert.equal(ended.ctx.code, 103, `permission denied: ${JSON.stringify(ended.ctx)}`);
    assert.equal(forbiddenEvents.count('subscribed'), 0);

    // A private topic: no grant, but a subscription token for it (4 s), refreshed through the
    // subscription's getToken (sub_refresh) without a resubscribe; one for another topic is refused.
    let subscriptionTokens = 0;
    const subscriptionToken = (channel: string) => async () => {
      subscriptionTokens++;
      return (await devUserToken(local.idp!.issuer, secret, { sub: 'carol', channel, ttlSeconds: 4 })).token;
    };
    const ops = carol.newSubscription('team.ops', { getToken: subscriptionToken('team.ops') });
    const opsEvents = new Recorder(ops, ['subscribing', 'subscribed', 'unsubscribed', 'publication', 'error']);
    ops.subscribe();
    await opsEvents.wait('subscribed');
    const opsOffset = await publish(local, survivor, 'team.ops', { n: 'ops' }, 'ops-1');
    await opsEvents.wait('publication', (c) => c.offset === opsOffset);
    await eventually(() => subscriptionTokens >= 3, 15_000, `two sub_refresh rounds (${subscriptionTokens} tokens so far)`);
    assert.deepEqual(
      [opsEvents.count('subscribing'), opsEvents.count('subscribed'), opsEvents.count('unsubscribed')],
      [1, 1, 0],
      opsEvents.names(),
    );
    const wrong = carol.newSubscription('team.finance', { getToken: subscriptionToken('team.ops') });
    const wrongEvents = new Recorder(wrong, ['subscribed', 'unsubscribed']);
    wrong.subscribe();
    assert.equal((await wrongEvents.wait('unsubscribed')).ctx.code, 103, 'a token for another topic: permission denied');
  });
});
