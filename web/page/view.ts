/**
 * The page's DOM: the connection badge, a row per topic and the feed. States are written to
 * `data-state` as well as shown, so a test (and CSS) reads the same thing a person sees.
 */

/** What a topic's row shows. */
export type TopicState = 'subscribing' | 'live' | 'recovering' | 'recovered' | 'unrecovered' | 'denied';

const byId = (id: string) => document.getElementById(id)!;

function badge(element: HTMLElement, state: string, text = state): void {
  element.dataset.state = state;
  element.textContent = text;
}

/** The connection's state, and once connected its id (`<replica>-<n>`). */
export function showConnection(state: string, client?: string): void {
  const element = byId('connection');
  if (client) element.dataset.client = client;
  badge(element, state, client ? `${state} · ${client}` : state);
}

export function showUser(sub: string): void {
  byId('user').textContent = sub ? `signed in as ${sub}` : '';
}

export function showTopic(topic: string, state: TopicState, detail = ''): void {
  let row = document.querySelector<HTMLElement>(`#topics li[data-topic="${CSS.escape(topic)}"]`);
  if (!row) {
    row = document.createElement('li');
    row.dataset.topic = topic;
    row.append(Object.assign(document.createElement('span'), { textContent: topic }), document.createElement('span'));
    byId('topics').append(row);
  }
  const status = row.lastElementChild as HTMLElement;
  badge(status, state, detail ? `${state}: ${detail}` : state);
  status.className = 'badge';
}

/** A notification at the top of the feed (the newest 200 are kept). */
export function showPublication(topic: string, offset: number | undefined, data: unknown): void {
  const item = document.createElement('li');
  item.dataset.topic = topic;
  if (offset !== undefined) item.dataset.offset = String(offset);
  const meta = Object.assign(document.createElement('span'), {
    className: 'meta',
    textContent: `${new Date().toLocaleTimeString()} · ${topic}${offset === undefined ? '' : ` #${offset}`}`,
  });
  item.append(meta, Object.assign(document.createElement('code'), { textContent: JSON.stringify(data) }));
  const feed = byId('feed');
  feed.prepend(item);
  while (feed.children.length > 200) feed.lastElementChild!.remove();
}
