// Plays the chat in two pages of headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): ann on the first node's page, bob on the second's. It prints one line
// of JSON: the steps it passed, the first one that failed, and what the pages logged.
// Run by ../e2e_test.go:
//
//	node chat.mjs http://127.0.0.1:PORT_A/ http://127.0.0.1:PORT_B/ TTL_MS [chromium]
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [urlA, urlB, ttlArg, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
const ttl = Number(ttlArg);
const stepTimeout = 10000;
const report = { steps: [], console: [], pageErrors: [] };

// A fresh profile, removed afterwards, as in interop/js/browser_client.mjs.
const userDataDir = mkdtempSync(join(tmpdir(), 'livepoll-chat-'));
let context;

async function step(name, fn) {
  const start = Date.now();
  try {
    await fn();
    report.steps.push({ name, ok: true, ms: Date.now() - start });
  } catch (e) {
    report.steps.push({ name, ok: false, ms: Date.now() - start, error: String((e && e.message) || e) });
    throw e;
  }
}

async function openPage(label, url) {
  const page = await context.newPage();
  page.on('console', (m) => {
    report.console.push(`${label} ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => report.pageErrors.push(`${label}: ${e}`));
  await page.goto(url, { timeout: stepTimeout });
  await page.waitForSelector('body[data-state="idle"]', { timeout: stepTimeout });
  return page;
}

async function joinAs(page, name, room) {
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join');
  await page.waitForSelector('body[data-state="joined"]', { timeout: stepTimeout });
}

// members returns the names in the page's presence list, sorted.
const members = (page) =>
  page.evaluate(() => [...document.querySelectorAll('#members li .name')].map((e) => e.textContent).sort());

async function waitMembers(page, want) {
  await page
    .waitForFunction(
      (want) => {
        const got = [...document.querySelectorAll('#members li .name')].map((e) => e.textContent).sort();
        return JSON.stringify(got) === JSON.stringify(want);
      },
      want,
      { timeout: stepTimeout },
    )
    .catch(async (e) => {
      throw new Error(`members ${JSON.stringify(await members(page))}, want ${JSON.stringify(want)}: ${e.message}`);
    });
}

const waitNotice = (page, text) =>
  page.waitForFunction(
    (text) => [...document.querySelectorAll('#log li.notice')].some((li) => li.textContent === text),
    text,
    { timeout: stepTimeout },
  );

const waitMessage = (page, user, text) =>
  page.waitForFunction(
    ([user, text]) =>
      [...document.querySelectorAll('#log li.msg')].some(
        (li) => li.querySelector('.user').textContent === user && li.querySelector('.text').textContent === text,
      ),
    [user, text],
    { timeout: stepTimeout },
  );

// User text that would run or render as markup if the page used innerHTML.
const hostile = 'hi bob <b>bold</b> <img src=x onerror="window.__xss=1"> & <script>window.__xss=1</script>';

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
    ],
  });
  report.browser = context.browser() ? context.browser().version() : '';
  let ann, bob;

  await step('open a page on each node', async () => {
    ann = await openPage('ann', urlA);
    bob = await openPage('bob', urlB);
  });
  await step('ann joins lobby on node A', () => joinAs(ann, 'ann', 'lobby'));
  await step('bob joins lobby on node B', () => joinAs(bob, 'bob', 'lobby'));
  await step('ann sees bob join and both see each other', async () => {
    await waitNotice(ann, 'bob joined');
    await waitMembers(ann, ['ann', 'bob']);
    await waitMembers(bob, ['ann', 'bob']);
  });
  await step('a name that looks like ann is refused on node A, with the reason', async () => {
    const other = await openPage('ANN', urlA);
    await other.fill('#name', 'ＡＮＮ');
    await other.click('#join');
    await other.waitForFunction(() => document.getElementById('error').textContent.includes('already connected'), null, {
      timeout: stepTimeout,
    });
    const state = await other.evaluate(() => document.body.dataset.state);
    if (state !== 'idle') throw new Error(`state ${state} after the refusal, want idle`);
    await other.close();
  });
  await step('ann says something; bob sees it as text', async () => {
    await ann.fill('#text', hostile);
    await ann.press('#text', 'Enter');
    await waitMessage(bob, 'ann', hostile);
    await waitMessage(ann, 'ann', hostile);
    for (const [label, page] of [['ann', ann], ['bob', bob]]) {
      const seen = await page.evaluate(() => ({
        markup: document.querySelectorAll('#log b, #log img, #log script').length,
        xss: window.__xss === 1,
      }));
      if (seen.markup || seen.xss) throw new Error(`${label}'s page rendered user text as markup: ${JSON.stringify(seen)}`);
    }
  });
  await step('bob answers; ann sees it', async () => {
    await bob.fill('#text', 'hello ann');
    await bob.click('#send');
    await waitMessage(ann, 'bob', 'hello ann');
  });
  await step('presence holds past the ttl (rosters keep it)', async () => {
    await ann.waitForTimeout(ttl + 500);
    await waitMembers(ann, ['ann', 'bob']);
    await waitMembers(bob, ['ann', 'bob']);
    for (const [label, page] of [['ann', ann], ['bob', bob]]) {
      const gone = await page.evaluate(() => [...document.querySelectorAll('#log li.notice')].filter((li) => li.textContent.includes('is gone')).length);
      if (gone) throw new Error(`${label}'s page dropped a member that is still there`);
    }
  });
  await step('bob closes his page; ann sees him leave', async () => {
    await bob.close();
    await waitNotice(ann, 'bob left');
    await waitMembers(ann, ['ann']);
  });
} catch (e) {
  if (!report.steps.some((s) => !s.ok)) report.error = String((e && e.stack) || e);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
