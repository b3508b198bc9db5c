#!/usr/bin/env node
// Headless-browser check of the tower-next fixture app (tests/fixtures/app15).
//
// Usage: node check.mjs [--skip-explicit] <baseUrl>
//   e.g. node check.mjs http://127.0.0.1:3000
//
//   --skip-explicit  skip the `/a?from=nav` step (that path is an explicit route
//                    of the Rust server; plain `next start` answers it with 404).
//
// Setup: `apt-get install -y chromium` (Debian's browser; Playwright never
// downloads one here) and `npm ci` in this directory (playwright-core only).
// Environment: CHROMIUM_PATH overrides the browser binary (default /usr/bin/chromium).
//
// Prints one line per step ("ok - ...") and exits 0 on success; on failure prints
// "not ok - <step>: <reason>" with the page URL and an HTML excerpt and exits 1.
// The whole run is bounded by a 60 s timeout (then: "not ok", exit 1).

import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Hard bound for the whole process. The steps get OVERALL - RESERVE; the
// reserve pays for failure diagnostics and closing the browser.
const OVERALL_TIMEOUT_MS = 60_000;
const RESERVE_MS = 8_000;
const STEP_TIMEOUT_MS = 10_000;
const DIAG_TIMEOUT_MS = 2_000;
const CLOSE_TIMEOUT_MS = 5_000;
const EXECUTABLE = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: node check.mjs [--skip-explicit] <baseUrl>   (e.g. http://127.0.0.1:3000)');
  process.exit(2);
}

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2);
let skipExplicit = false;
const positional = [];
for (const a of argv) {
  if (a === '--skip-explicit') skipExplicit = true;
  else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else positional.push(a);
}
if (positional.length !== 1) usage('expected exactly one baseUrl');
let base;
try {
  base = new URL(positional[0]);
} catch {
  usage(`invalid baseUrl ${positional[0]}`);
}
if (base.protocol !== 'http:' || base.hostname !== '127.0.0.1') {
  usage(`baseUrl must be http://127.0.0.1:<port> (got ${base.href})`);
}
const ORIGIN = base.origin;
const url = (path) => ORIGIN + path;

// ---------------------------------------------------------------- state
const consoleErrors = []; // { kind, text, url }
const serverErrors = []; // { status, method, url }
const offOrigin = []; // urls requested outside ORIGIN
const failedRequests = []; // informational only
const stepResponses = []; // RSC fetches and document loads of the current step, for diagnostics
let userDataDir;
let context;
let page;
let currentStep = 'startup';
let aborted = false; // set once the run has failed/timed out: later steps stay silent

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

class CheckError extends Error {}
function fail(msg) {
  throw new CheckError(msg);
}

async function step(name, fn) {
  currentStep = name;
  stepResponses.length = 0;
  const note = await fn();
  if (aborted) fail('aborted');
  console.log(`ok - ${name}${note ? ` (${note})` : ''}`);
}

async function textOf(selector) {
  try {
    return await page.locator(selector).first().textContent({ timeout: 1000 });
  } catch {
    return null;
  }
}

// Wait until the first element matching `selector` has text satisfying `pred`.
async function waitText(selector, pred, desc, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last = null;
  while (Date.now() < deadline) {
    last = await textOf(selector);
    if (last !== null && pred(last.trim())) return last.trim();
    await sleep(100);
  }
  fail(`timed out after ${timeout} ms waiting for ${selector} ${desc}; last text: ${JSON.stringify(last)}`);
}

async function noReloadFlag() {
  return page.evaluate(() => window.__noReload);
}

async function assertNoReload(target) {
  const flag = await noReloadFlag();
  if (flag !== 1) {
    fail(
      `navigation to ${target} was a full page reload, not a client-side navigation ` +
        `(window.__noReload is ${JSON.stringify(flag)})` +
        responsesFor(target)
    );
  }
}

// "; responses for <target>: ..." describing the RSC fetches / document loads of
// `target` (path + optional query) seen during the current step.
function responsesFor(target) {
  const path = new URL(target.split(' ')[0], ORIGIN).pathname;
  const seen = stepResponses.filter((r) => r.path === path).map((r) => r.text);
  return seen.length
    ? `; responses for ${path} during this step: ${seen.join(' | ')}`
    : `; no RSC or document response for ${path} seen during this step`;
}

function assertPath(expected) {
  const u = new URL(page.url());
  const got = u.pathname + u.search;
  if (got !== expected) fail(`expected location ${expected}, got ${got}`);
}

async function clickNav(href) {
  const link = page.locator(`nav a[href="${href}"]`).first();
  try {
    await link.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`no visible nav link with href="${href}"`);
  }
  await link.click();
}

// ---------------------------------------------------------------- the steps
async function run() {
  userDataDir = await mkdtemp(join(tmpdir(), 'tower-next-browser-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Resolve no host names at all: only 127.0.0.1 is reachable.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    timeout: 20_000,
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(15_000);

  context.on('request', (req) => {
    const u = req.url();
    if (/^https?:/.test(u) && new URL(u).origin !== ORIGIN) offOrigin.push(`${req.method()} ${u}`);
  });
  context.on('response', (res) => {
    if (res.status() >= 500) serverErrors.push(`${res.status()} ${res.request().method()} ${res.url()}`);
    const req = res.request();
    const isRsc = req.headers()['rsc'] === '1';
    if (isRsc || req.resourceType() === 'document') {
      stepResponses.push({
        path: new URL(res.url()).pathname,
        text:
          `${isRsc ? (req.headers()['next-router-prefetch'] ? 'RSC prefetch' : 'RSC') : 'document'} ` +
          `${req.method()} ${res.url()} -> ${res.status()} [${res.headers()['content-type'] || '-'}]`,
      });
    }
  });
  context.on('requestfailed', (req) => {
    failedRequests.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
  });

  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      consoleErrors.push({ kind: 'console.error', text: msg.text(), url: msg.location()?.url || '', page: page.url() });
    }
  });
  page.on('pageerror', (err) => {
    consoleErrors.push({ kind: 'pageerror', text: String(err?.stack || err), url: '', page: page.url() });
  });

  await step('load /', async () => {
    const res = await page.goto(url('/'), { waitUntil: 'load' });
    if (!res) fail('no response for /');
    if (res.status() !== 200) fail(`GET / answered ${res.status()}`);
    await waitText('#counter', (t) => /^Count: \d+$/.test(t), 'to read "Count: N"');
    return `HTTP ${res.status()}`;
  });

  await step('hydrated', async () => {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    let clicks = 0;
    let text = (await textOf('#counter'))?.trim();
    if (text !== 'Count: 0') fail(`#counter should start at "Count: 0", got ${JSON.stringify(text)}`);
    while (Date.now() < deadline) {
      await page.locator('#counter').click({ timeout: 2000 });
      clicks++;
      // Give React up to 1 s to process the click before clicking again.
      const until = Math.min(deadline, Date.now() + 1000);
      while (Date.now() < until) {
        text = (await textOf('#counter'))?.trim();
        if (text !== 'Count: 0') break;
        await sleep(50);
      }
      if (text !== 'Count: 0') break;
    }
    if (text === 'Count: 0') fail(`#counter still "Count: 0" after ${clicks} clicks in ${STEP_TIMEOUT_MS} ms: page never hydrated`);
    const m = /^Count: (\d+)$/.exec(text || '');
    if (!m) fail(`#counter has unexpected text ${JSON.stringify(text)}`);
    const n = Number(m[1]);
    if (n !== 1) {
      // React may replay a click made during hydration; confirm that one more click counts exactly once.
      await sleep(300);
      const now = Number(/^Count: (\d+)$/.exec((await textOf('#counter'))?.trim() || '')?.[1]);
      await page.locator('#counter').click();
      await waitText('#counter', (t) => t === `Count: ${now + 1}`, `to read "Count: ${now + 1}"`, 3000);
      return `Count: ${n} after ${clicks} click(s); a pre-hydration click was replayed, extra click counted once`;
    }
    return `Count: 1 after ${clicks} click(s)`;
  });

  await page.evaluate(() => {
    window.__noReload = 1;
  });

  await step('client navigation to /about', async () => {
    await clickNav('/about');
    await waitText('#title', (t) => t === 'About page', 'to read "About page"');
    await assertNoReload('/about');
    assertPath('/about');
  });

  if (skipExplicit && !aborted) {
    console.log('ok - explicit route /a?from=nav # SKIP (--skip-explicit)');
  } else {
    await step('client navigation to explicit route /a?from=nav', async () => {
      await clickNav('/a?from=nav');
      // Wait for "Page B"; notice early when Next gave up on client navigation
      // and loaded the URL as a new document instead (window.__noReload gone).
      const deadline = Date.now() + STEP_TIMEOUT_MS;
      const pageB = page.getByText('Page B', { exact: true }).first();
      let reloadedSince = 0;
      for (;;) {
        if (await pageB.isVisible().catch(() => false)) break;
        const flag = await noReloadFlag().catch(() => 'unknown');
        const ready = await page.evaluate(() => document.readyState).catch(() => 'loading');
        if (flag !== 1 && flag !== 'unknown' && ready === 'complete') {
          reloadedSince ||= Date.now();
          if (Date.now() - reloadedSince > 1000) {
            fail(
              `client-side navigation to /a?from=nav was NOT possible: Next fell back to a full page load, ` +
                `and that load does not show "Page B" either` +
                responsesFor('/a?from=nav')
            );
          }
        }
        if (Date.now() > deadline) {
          fail(
            `"Page B" did not appear within ${STEP_TIMEOUT_MS} ms` +
              (flag === 1 ? ' (still the previous document: client navigation never completed)' : '') +
              responsesFor('/a?from=nav')
          );
        }
        await sleep(100);
      }
      const q = await waitText(
        '#query',
        (t) => t.includes('from') && t.includes('nav'),
        'to contain "from" and "nav"',
        Math.max(1000, deadline - Date.now())
      );
      let parsed;
      try {
        parsed = JSON.parse(q);
      } catch {
        fail(`#query is not JSON: ${JSON.stringify(q)}`);
      }
      if (parsed?.from !== 'nav') fail(`#query should have from="nav", got ${q}`);
      if ((await noReloadFlag()) !== 1) {
        fail(
          `"Page B" is shown, but client-side navigation to /a?from=nav was NOT possible: ` +
            `Next fell back to a full page load` +
            responsesFor('/a?from=nav')
        );
      }
      assertPath('/a?from=nav');
      return `query ${q}`;
    });
  }

  await step('server action on /action', async () => {
    await clickNav('/action');
    const input = page.locator('#name');
    await input.waitFor({ state: 'visible' });
    await assertNoReload('/action');
    assertPath('/action');
    await input.fill('tower');
    await page.locator('#submit').click();
    await waitText('#action-result', (t) => t === 'Hello, tower!', 'to read "Hello, tower!"');
    await assertNoReload('/action (after submitting the server action)');
  });

  await step('navigation to Pages Router /legacy', async () => {
    await clickNav('/legacy');
    await page.getByText('Legacy page', { exact: true }).first().waitFor({ state: 'visible' });
    assertPath('/legacy');
    const kind = (await noReloadFlag()) === 1 ? 'client-side' : 'full load, expected across routers';
    return kind;
  });

  await step('no console errors, no 5xx responses, no off-origin requests', async () => {
    await sleep(500); // let late console messages / responses arrive
    const problems = [];
    const errs = consoleErrors.filter((e) => !ignoredConsoleError(e));
    for (const e of consoleErrors) {
      const why = ignoredConsoleError(e);
      if (why) console.log(`# ignored console error: ${why}: ${e.url}`);
    }
    for (const e of errs) problems.push(`${e.kind} on ${e.page}: ${e.text}${e.url ? ` (${e.url})` : ''}`);
    for (const s of serverErrors) problems.push(`server error response: ${s}`);
    for (const o of offOrigin) problems.push(`request outside ${ORIGIN}: ${o}`);
    if (problems.length) fail(`${problems.length} problem(s):\n    ${problems.join('\n    ')}`);
    const ignored = consoleErrors.length - errs.length;
    return ignored ? `${ignored} expected console error(s) ignored, see above` : '';
  });
}

// Console errors that say nothing about the server under test. Returns the
// reason for ignoring `e`, or null.
//  - /favicon.ico: the browser requests it on every full document load; the
//    fixture app has no favicon, so a 404 there is expected.
//  - /a with --skip-explicit: the server has no /a route, so the <Link>
//    prefetch of /a?from=nav legitimately 404s.
function ignoredConsoleError(e) {
  if (e.kind !== 'console.error' || !/status of 404/.test(e.text) || !e.url) return null;
  let path;
  try {
    path = new URL(e.url).pathname;
  } catch {
    return null;
  }
  if (path === '/favicon.ico') return '404 for /favicon.ico (browser-initiated; fixture has no favicon)';
  if (skipExplicit && path === '/a') return '404 for the skipped explicit route /a (Link prefetch)';
  return null;
}

// ---------------------------------------------------------------- diagnostics & cleanup
async function describePage() {
  if (!page || page.isClosed()) return '  (no page)';
  const lines = [`  url: ${page.url()}`];
  try {
    const html = await withTimeout(
      page.evaluate(() => (document.body ? document.body.innerHTML : document.documentElement.outerHTML)),
      DIAG_TIMEOUT_MS,
      'reading the page HTML'
    );
    const squashed = html.replace(/\s+/g, ' ').replace(/<script\b[^>]*>.*?<\/script>/gis, '<script>…</script>');
    lines.push(`  html: ${squashed.slice(0, 800)}${squashed.length > 800 ? ' …' : ''}`);
  } catch (e) {
    lines.push(`  html: (unavailable: ${e.message.split('\n')[0]})`);
  }
  return lines.join('\n');
}

function describeCollected() {
  const lines = [];
  if (consoleErrors.length) {
    lines.push('  console errors so far:');
    for (const e of consoleErrors.slice(0, 10)) lines.push(`    ${e.kind}: ${e.text.split('\n')[0]}${e.url ? ` (${e.url})` : ''}`);
  }
  if (serverErrors.length) lines.push(`  5xx responses so far: ${serverErrors.slice(0, 10).join(' | ')}`);
  if (offOrigin.length) lines.push(`  off-origin requests: ${offOrigin.slice(0, 10).join(' | ')}`);
  if (failedRequests.length) lines.push(`  failed requests (info): ${failedRequests.slice(0, 10).join(' | ')}`);
  return lines.join('\n');
}

let cleanedUp = false;
async function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  if (context) {
    try {
      await withTimeout(context.close(), CLOSE_TIMEOUT_MS, 'closing the browser');
    } catch (e) {
      // Playwright kills the browser process when this Node process exits.
      console.error(`warning: ${e.message}`);
    }
  }
  if (userDataDir) {
    try {
      await rm(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    } catch (e) {
      console.error(`warning: could not remove ${userDataDir}: ${e.message}`);
    }
  }
}

async function reportFailure(err) {
  // Playwright errors carry a multi-line, colourised "Call log"; keep the first line.
  const reason =
    err instanceof CheckError
      ? err.message
      : String(err?.message || err).replace(/\x1b\[[0-9;]*m/g, '').split('\n')[0];
  console.log(`not ok - ${currentStep}: ${reason}`);
  console.log(await describePage());
  const collected = describeCollected();
  if (collected) console.log(collected);
}

async function main() {
  const started = Date.now();
  // Last resort: if diagnostics or closing hang, exit anyway. Playwright's own
  // process 'exit' handler then SIGKILLs the browser.
  const watchdog = setTimeout(() => {
    console.log(`not ok - ${currentStep}: hard timeout of ${OVERALL_TIMEOUT_MS / 1000} s, exiting`);
    if (userDataDir) {
      try {
        rmSync(userDataDir, { recursive: true, force: true });
      } catch {}
    }
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);
  let overallTimer;
  const overall = new Promise((_, rej) => {
    overallTimer = setTimeout(
      () =>
        rej(
          new CheckError(
            `overall timeout: the checks did not finish within ${(OVERALL_TIMEOUT_MS - RESERVE_MS) / 1000} s ` +
              `(of the ${OVERALL_TIMEOUT_MS / 1000} s budget)`
          )
        ),
      OVERALL_TIMEOUT_MS - RESERVE_MS
    );
  });
  let code = 0;
  try {
    await Promise.race([run(), overall]);
    console.log(`# all checks passed against ${ORIGIN} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    code = 1;
    aborted = true;
    await reportFailure(err);
  } finally {
    clearTimeout(overallTimer);
    await cleanup();
  }
  clearTimeout(watchdog);
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    aborted = true;
    console.log(`not ok - ${currentStep}: interrupted by ${sig}`);
    cleanup().finally(() => process.exit(1));
  });
}

main();
