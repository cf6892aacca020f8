import { readFileSync } from 'node:fs';
import { PUBLISH_API_PATH } from '../../app/src/shared/protocol';
import type { LocalRun } from '../../local/run';

/**
 * A publication through one replica's own publish API, with the run's key; while the broker
 * restarts (503) it is sent again with the same id, at most `retries` times, calling `onRefused`
 * each time. Resolves with its offset.
 */
export async function publishVia(
  local: LocalRun,
  replica: number,
  body: { topic: string; data: unknown; id?: string },
  retries = 0,
  onRefused: () => void = () => {},
): Promise<number> {
  const key = readFileSync(local.topology.server.apiKeyFile!, 'utf8').trim();
  const url = `http://127.0.0.1:${local.replicas[replica].port}${PUBLISH_API_PATH}`;
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as { offset?: number };
    if (response.status === 202) return answer.offset!;
    if (response.status !== 503 || attempt >= retries) throw new Error(`publish answered ${response.status}: ${JSON.stringify(answer)}`);
    onRefused();
    await new Promise((r) => setTimeout(r, 200));
  }
}
