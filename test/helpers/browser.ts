import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect } from 'node:tls';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium: playwright drives it; no browser is downloaded. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * The SPKI hash (base64 SHA-256) of the certificate a TLS port serves, checked against the run's
 * CA first: Chromium is told to accept exactly that key, not to ignore certificate errors.
 */
export function servedKeyPin(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const spki = socket.getPeerX509Certificate()!.publicKey.export({ type: 'spki', format: 'der' });
      socket.end();
      resolve(createHash('sha256').update(spki).digest('base64'));
    });
    socket.on('error', reject);
  });
}

/** Headless Chromium trusting one served key (none: plain ws:// and http:// on loopback only). */
export async function launchChromium(pin?: string): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (npm start and .ci/run install it)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      // Root in a container has no user namespace for Chromium's sandbox.
      '--no-sandbox',
      ...(pin ? [`--ignore-certificate-errors-spki-list=${pin}`] : []),
      // Loopback only: no name resolves (the dev IdP's login page imports a web font; Chromium's
      // own services call home), so nothing leaves the machine.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      '--disable-component-update',
      '--disable-domain-reliability',
    ],
  });
}

/**
 * The page's sign-in at the development IdP: its login form (any name, any password), then its
 * consent; resolves once the page is connected as that user.
 */
export async function signInOnPage(page: Page, name: string): Promise<void> {
  await page.locator('input[name="login"]').fill(name);
  await page.locator('input[name="password"]').fill('any');
  await page.locator('button[type="submit"]').click();
  await page.locator('button[type="submit"]', { hasText: 'Continue' }).click();
  await page.locator('#connection[data-state="connected"]').waitFor();
}

/** A topic's state badge on the page (live, recovering, recovered, denied...). */
export const topicBadge = (page: Page, topic: string, state: string) =>
  page.locator(`#topics li[data-topic="${topic}"] .badge`).and(page.locator(`[data-state="${state}"]`));
