import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { Page } from 'playwright-core';
import { defineTopology, withoutAuth } from '../../app/src/topology';
import { nginxVersion, ROOT, startLocalRun, type LocalRun } from '../../local/run';
import { launchChromium, servedKeyPin, signInOnPage, topicBadge } from '../helpers/browser';
import { publishVia } from '../helpers/publish';
import { scratchDir } from '../helpers/scratch';

const NGINX = nginxVersion();
assert.ok(NGINX, 'nginx must be installed for the end-to-end tests (apt-get install nginx-light)');

const publish = (local: LocalRun, replica: number, topic: string, data: unknown) => publishVia(local, replica, { topic, data });

/** The run's page in headless Chromium (closed after the test), and the script and console errors it shows. */
async function openPage(t: TestContext, local: LocalRun, path: string): Promise<{ page: Page; errors: string[] }> {
  const browser = await launchChromium(await servedKeyPin(local.httpsPort, readFileSync(local.caFile)));
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // The page's own console only: the provider's login page (its web font resolves nowhere here) is not the page.
  const origin = `https://localhost:${local.httpsPort}`;
  page.on('console', (m) => m.type() === 'error' && m.location().url.startsWith(origin) && errors.push(m.text()));
  await page.goto(`${origin}${path}`);
  return { page, errors };
}

describe('the notification page in headless Chromium (the SDK bundled, through nginx and TLS)', () => {
  it('connects, shows a publication from the API, and shows "recovered" after its replica is killed', async (t) => {
    const keyFile = join(scratchDir('ws-page-key-'), 'key');
    writeFileSync(keyFile, 'k'.repeat(32));
    const local = await startLocalRun(
      defineTopology(
        withoutAuth({
          replicas: 2,
          server: { apiKeyFile: keyFile },
          proxy: { nginxVersion: NGINX, balancing: { strategy: 'round_robin' } },
          broker: { enabled: true },
        }),
      ),
    );
    t.after(() => local.stop());
    const { page, errors } = await openPage(t, local, '/?topics=news,orders');

    const connection = page.locator('#connection');
    await connection.and(page.locator('[data-state="connected"]')).waitFor();
    for (const name of ['news', 'orders']) await topicBadge(page, name, 'live').waitFor();

    const first = await publish(local, 0, 'news', { text: 'deploy finished', build: 4711 });
    const item = page.locator(`#feed li[data-offset="${first}"]`);
    await item.waitFor();
    assert.match((await item.textContent()) ?? '', /deploy finished/);

    // Kill the page's replica; what is published meanwhile shows once the SDK recovers.
    const client = (await connection.getAttribute('data-client'))!;
    const home = local.replicas.findIndex((r) => client.startsWith(`${r.id}-`));
    assert.ok(home >= 0, `the page names its replica: ${client}`);
    await local.stopReplica(home, 'SIGKILL');
    const missed = await publish(local, 1 - home, 'orders', { order: 17, status: 'shipped' });
    for (const name of ['news', 'orders']) await topicBadge(page, name, 'recovered').waitFor({ timeout: 20_000 });
    await page.locator(`#feed li[data-offset="${missed}"]`).waitFor();
    assert.notEqual(await connection.getAttribute('data-client'), client, 'reconnected to the other replica');
    assert.deepEqual(errors, [], 'no script or console errors on the page');

    // The README's screenshot: `UPDATE_SCREENSHOTS=1` writes it to docs/images, otherwise to scratch.
    const dir = process.env.UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs/images') : scratchDir('ws-page-shot-');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'page.png') });
  });

  it('with auth: signs in at the development IdP (code flow with PKCE), follows its own topic and shows a forbidden one as denied', async (t) => {
    // auth left out: the default, jwt against the development IdP, which the run starts.
    const local = await startLocalRun(defineTopology({ replicas: 1, proxy: { nginxVersion: NGINX }, broker: { enabled: true } }));
    t.after(() => local.stop());
    const { page, errors } = await openPage(t, local, '/?topics=user.{sub}.inbox,ops.alerts');

    await signInOnPage(page, 'dana');
    assert.equal(await page.locator('#user').textContent(), 'signed in as dana');
    assert.equal(new URL(page.url()).searchParams.get('code'), null, 'the code is gone from the address bar');
    await topicBadge(page, 'user.dana.inbox', 'live').waitFor();
    await topicBadge(page, 'ops.alerts', 'denied').waitFor();

    const offset = await publish(local, 0, 'user.dana.inbox', { text: 'your report is ready' });
    await page.locator(`#feed li[data-offset="${offset}"]`).waitFor();
    // The provider's login page imports a web font, which no name resolves here: its console error is the provider's.
    assert.deepEqual(
      errors.filter((e) => !e.includes('ERR_NAME_NOT_RESOLVED')),
      [],
      'no script or console errors on the page',
    );
  });
});
