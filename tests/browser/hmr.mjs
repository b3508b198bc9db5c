#!/usr/bin/env node
// Hot module replacement through the Rust server, in a real browser (Debian's Chromium).
//
// Usage: node hmr.mjs <baseUrl> <projectDir>
//   Loads <baseUrl>/, hydrates the counter (#counter, "Count: N") to 1, then edits
//   <projectDir>/app/page.js so that the heading "Home page" reads "Home page (edited)",
//   and waits for the DOM to show it without a full reload: the counter keeps its state
//   and a marker set on `window` survives.
//
// Prints "ok - ..." per step and "# all checks passed"; exits 1 on failure. Bounded: 150 s.

import { chromium } from 'playwright-core';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OVERALL_TIMEOUT_MS = 150_000;
const EXECUTABLE = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const [baseUrl, projectDir] = process.argv.slice(2);
if (!/^http:\/\/(127\.0\.0\.1|localhost):\d+$/.test(baseUrl || '') || !projectDir) {
  console.error('usage: node hmr.mjs http://localhost:<port> <projectDir>');
  process.exit(2);
}

const watchdog = setTimeout(() => {
  console.log(`not ok - the HMR check did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

const pageFile = join(projectDir, 'app/page.js');
const userDataDir = await mkdtemp(join(tmpdir(), 'tower-next-hmr-'));
let context;
let failed = false;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));

  // A dev server compiles the page on first load: allow for it.
  const response = await page.goto(`${baseUrl}/`, { timeout: 60_000 });
  if (!response || response.status() !== 200) throw new Error(`GET / answered ${response && response.status()}`);
  console.log('ok - loaded / (dev)');

  const counter = page.locator('#counter');
  const deadline = Date.now() + 45_000;
  while ((await counter.textContent()) !== 'Count: 1') {
    if (Date.now() > deadline) throw new Error(`never hydrated: ${await counter.textContent()}`);
    if ((await counter.textContent()) === 'Count: 0') await counter.click();
    await page.waitForTimeout(500);
  }
  await page.evaluate(() => {
    window.__hmrMarker = 'still here';
  });
  console.log('ok - hydrated (Count: 1)');

  const source = await readFile(pageFile, 'utf8');
  if (!source.includes('Home page')) throw new Error(`${pageFile} has no "Home page" heading`);
  await writeFile(pageFile, source.replace('Home page', 'Home page (edited)'));
  await page.waitForFunction(
    () => document.querySelector('h1')?.textContent === 'Home page (edited)',
    null,
    { timeout: 60_000 },
  );
  console.log('ok - the edit reached the page');

  const marker = await page.evaluate(() => window.__hmrMarker);
  const count = await counter.textContent();
  if (marker !== 'still here') throw new Error('the page was reloaded (window marker lost)');
  if (count !== 'Count: 1') throw new Error(`component state lost: ${count}`);
  console.log('ok - no full reload, state kept (Count: 1)');
  if (errors.length) throw new Error(`page errors: ${errors.join(' | ')}`);
  console.log('# all checks passed');
} catch (err) {
  failed = true;
  console.log(`not ok - ${err && err.message ? err.message : err}`);
} finally {
  if (context) await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
