import { Centrifuge, type Subscription } from 'centrifuge';
import type { PageConfig } from './config';
import { signIn } from './sign-in';
import { showConnection, showPublication, showTopic, showUser } from './view';

/** Code of Centrifugo's "permission denied" error: the subscription ends unsubscribed with it. */
const PERMISSION_DENIED = 103;

/** The live feed: the SDK, unchanged, against this page's own origin. */
async function main(): Promise<void> {
  const config = (await (await fetch('config.json')).json()) as PageConfig;
  let getToken: (() => Promise<string>) | undefined;
  let sub = '';
  if (config.auth.mode === 'jwt') {
    const session = await signIn(config.auth);
    if (!session) return; // navigating to the provider
    getToken = () => session.token();
    sub = session.sub;
    showUser(sub);
  }
  const url = new URL(config.centrifugePath, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const client = new Centrifuge(url.toString(), getToken ? { getToken } : {});
  client.on('state', (ctx) => showConnection(ctx.newState));
  // The connection's id names its replica: balancing and failover are visible on the page.
  client.on('connected', (ctx) => showConnection('connected', ctx.client));
  const asked = new URLSearchParams(location.search).get('topics');
  // A user's own topics ({sub}) only for a signed-in user.
  const topics = (asked ? asked.split(',') : config.topics)
    .filter((t) => t && (sub || !t.includes('{sub}')))
    .map((t) => t.replaceAll('{sub}', sub));
  for (const topic of topics) follow(client.newSubscription(topic));
  client.connect();
}

/** One topic's row: subscribing, live, recovering after a reconnect and whether it recovered, or denied. */
function follow(subscription: Subscription): void {
  const topic = subscription.channel;
  let subscribedBefore = false;
  showTopic(topic, 'subscribing');
  subscription.on('subscribing', () => showTopic(topic, subscribedBefore ? 'recovering' : 'subscribing'));
  subscription.on('subscribed', (ctx) => {
    subscribedBefore = true;
    if (!ctx.wasRecovering) return showTopic(topic, 'live');
    showTopic(topic, ctx.recovered ? 'recovered' : 'unrecovered', ctx.recovered ? '' : 'some notifications were missed');
  });
  subscription.on('unsubscribed', (ctx) => {
    if (ctx.code === PERMISSION_DENIED) showTopic(topic, 'denied', 'no grant allows it');
  });
  subscription.on('publication', (ctx) => showPublication(topic, ctx.offset, ctx.data));
  subscription.subscribe();
}

main().catch((error: Error) => {
  showConnection('disconnected');
  document.body.append(Object.assign(document.createElement('p'), { textContent: `The page failed: ${error.message}` }));
});
