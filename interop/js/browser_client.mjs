// Opens the page URL given as the first argument in headless Chromium (the Debian
// package's /usr/bin/chromium, driven by playwright-core), waits for the page's checks and
// prints their report as one line of JSON. Driven by ../browser_test.go.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [pageURL, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
const userDataDir = mkdtempSync(join(tmpdir(), 'livepoll-chromium-'));
let context;
const out = {};
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: 30000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      // The wss test's server has a certificate made by the test: this browser exists
      // only for the tests.
      '--ignore-certificate-errors',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => process.stderr.write(`page console: ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e}\n`));
  await page.goto(pageURL, { timeout: 15000 });
  await page.waitForFunction(() => window.__interop !== undefined, null, { timeout: 60000 });
  Object.assign(out, await page.evaluate(() => window.__interop));
  out.browserVersion = context.browser() ? context.browser().version() : '';
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
