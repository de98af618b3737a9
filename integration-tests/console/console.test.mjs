// Browser tests of the MUTT console, in Debian's chromium driven by playwright-core.
// Run by integration-tests/tests/it/console.rs after it started MUTT (ingest+control,
// alerter, forwarder), a webhook sink, and filled the forwarder DLQ while the sink failed:
//
//   node --test integration-tests/console/console.test.mjs
//
// Env: CONSOLE_URL, CONTROL_URL, INGEST_URL, ADMIN_KEY, SINK_URL, DLQ_LETTERS,
// SCREENSHOT_DIR, CHROMIUM. Each step is its own test (they run in order and share the
// browser); every wait is bounded, and a watchdog ends the run if anything hangs.
// Everything is asserted through the UI; the API is used only to post events and to
// double-check outcomes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

const CONSOLE_URL = env('CONSOLE_URL');
const CONTROL_URL = env('CONTROL_URL').replace(/\/$/, '');
const INGEST_URL = env('INGEST_URL').replace(/\/$/, '');
const ADMIN_KEY = env('ADMIN_KEY');
const SINK_URL = env('SINK_URL').replace(/\/$/, '');
const DLQ_LETTERS = Number(env('DLQ_LETTERS'));
const SCREENSHOT_DIR = env('SCREENSHOT_DIR');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

const WAIT_MS = 30_000; // any single wait
const STEP_MS = 120_000; // any single step
const RUN_MS = 5 * 60_000; // the whole run (the Rust runner allows 6 minutes)
const RUN_ID = Date.now().toString(36);

// A run that hangs anyway (a browser that never answers) ends with a clear message.
const watchdog = setTimeout(() => {
  console.error(`console tests: still running after ${RUN_MS / 1000} s; giving up`);
  process.exit(1);
}, RUN_MS);
watchdog.unref();

let browser;
let context;
let page;
const problems = []; // console errors, page errors, CSP violations, unexpected 5xx
const shots = [];
let readerKey = null;

// Polls `fn` until it returns a truthy value; fails with `what` and the last value seen.
async function until(what, fn, { timeout = WAIT_MS, every = 250 } = {}) {
  const end = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}; last value: ${JSON.stringify(last)}${lastErr ? `; last error: ${lastErr.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

async function http(method, url, { key, body } = {}) {
  const headers = {};
  if (key) headers['X-API-Key'] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: resp.status, json };
}

const control = (method, p, opts) => http(method, `${CONTROL_URL}/api/v2${p}`, { key: ADMIN_KEY, ...opts });
const sinkStats = async () => (await http('GET', `${SINK_URL}/stats`)).json;

function event(host, message, extra = {}) {
  return { hostname: host, message, timestamp: new Date().toISOString(), syslog_severity: 'warning', source_type: 'console-test', ...extra };
}

async function ingest(events) {
  const r = await http('POST', `${INGEST_URL}/api/v2/ingest`, { key: ADMIN_KEY, body: events });
  assert.equal(r.status, 202, `ingest answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json;
}

async function text(selector) {
  const l = page.locator(selector).first();
  await l.waitFor({ state: 'visible', timeout: WAIT_MS });
  return (await l.textContent()).trim();
}

// Opens a view the way a keyboard user does (focus its link, press Enter); a view whose
// link is hidden (a scope the key lacks) is opened by its address.
async function go(view) {
  const link = page.locator(`nav a[href="#/${view}"]`);
  if (await link.isVisible()) {
    await link.focus();
    await page.keyboard.press('Enter');
  } else {
    await page.evaluate((v) => {
      location.hash = `#/${v}`;
    }, view);
  }
  await until(`the address to be #/${view}`, () => page.evaluate((v) => location.hash === `#/${v}`, view));
  await page.locator('#view h1').first().waitFor({ timeout: WAIT_MS });
  // The heading takes focus on navigation (keyboard and screen-reader users land there).
  await until(`the ${view} heading to take focus`, () => page.evaluate(() => document.activeElement && document.activeElement.tagName === 'H1'));
  assert.equal(await page.locator(`nav a[href="#/${view}"]`).getAttribute('aria-current'), 'page', `nav link of ${view} is aria-current`);
}

async function signIn(key) {
  await page.fill('#api-key', key);
  await page.click('#sign-in-form button[type=submit]');
}

// Each step: a test that, when it fails, leaves a screenshot of where it was
// (failed-<step>.png) beside the others.
function step(name, opts, fn) {
  test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const n = name.split('.')[0].replace(/[^0-9a-z]+/gi, '-');
      await page?.screenshot({ path: path.join(SCREENSHOT_DIR, `failed-step-${n}.png`) }).catch(() => {});
      throw e;
    }
  });
}

async function shot(name) {
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file, fullPage: false });
  shots.push(file);
}

// The dialog's confirm: fills the reason and presses the dialog's submit button.
async function confirmDialog(expect, reason) {
  const dlg = page.locator('dialog[open]');
  await dlg.waitFor({ timeout: WAIT_MS });
  const t = (await dlg.textContent()).replace(/\s+/g, ' ');
  if (expect) assert.match(t, expect, `the confirmation says: ${t}`);
  await dlg.locator('textarea[name=reason]').fill(reason);
  await dlg.locator('button[type=submit]').click();
  await dlg.waitFor({ state: 'detached', timeout: WAIT_MS });
  return t;
}

before(async () => {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: WAIT_MS });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  // CSP violations are reported as console errors by Chromium; this listener makes sure
  // each one is also named with the directive it broke. (Injected by the browser, not by
  // the page, so the page's CSP does not apply to it.)
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const t = m.text();
    // Refusals the tests provoke on purpose (a bad key, a bad regex, a read-only key, no
    // Prometheus for /slo) are logged by Chromium as failed loads; a 500 is not expected.
    if (/^Failed to load resource: the server responded with a status of (400|401|403|404|409|503)\b/.test(t)) return;
    problems.push(`console error: ${t} (${m.location().url}:${m.location().lineNumber})`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 500 && !(r.status() === 503 && r.url().endsWith('/api/v2/slo'))) problems.push(`${r.status()} from ${r.request().method()} ${r.url()}`);
  });
});

after(async () => {
  await browser?.close();
  clearTimeout(watchdog);
});

step('1. sign-in: a bad key is refused with a message, the admin key signs in', { timeout: STEP_MS }, async () => {
  const resp = await page.goto(CONSOLE_URL, { waitUntil: 'load', timeout: WAIT_MS });
  assert.equal(resp.status(), 200, `GET ${CONSOLE_URL}`);
  const csp = resp.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/, `the console is served with a CSP: ${csp}`);
  await page.locator('#api-key').waitFor();
  await shot('sign-in.png');

  await signIn(`mutt_${'0'.repeat(64)}`);
  const msg = await text('#sign-in-error');
  assert.match(msg, /Sign-in failed/, `bad key message: ${msg}`);
  assert.equal(await page.locator('#nav').isVisible(), false, 'no navigation without a valid key');

  await signIn(ADMIN_KEY);
  const who = await text('#who-name');
  assert.match(who, /Signed in as .+\(.*admin.*\)/, `who is signed in: ${who}`);
  await page.locator('#nav').waitFor({ state: 'visible' });
  assert.ok(!page.url().includes(ADMIN_KEY), 'the key is never in the URL');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('mutt.apiKey')), ADMIN_KEY, 'the key is kept in sessionStorage');
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
});

step('2. overview: live numbers move while events are posted; 3 processes ready', { timeout: STEP_MS }, async () => {
  await go('overview');
  const sub = () => page.locator('[data-testid=events-rate] .tile-sub').textContent();
  const accepted = async () => Number(((await sub()) || '').replace(/[^\d]/g, '')) || 0;
  await until('the overview to show the events counter', async () => /accepted in all/.test((await sub()) || ''));
  const first = await accepted();
  let posting = true;
  let posted = 0;
  const poster = (async () => {
    let i = 0;
    while (posting) {
      const batch = Array.from({ length: 5 }, () => event(`console-load-${RUN_ID}`, `console overview load event ${i++}`));
      await ingest(batch);
      posted += batch.length;
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  try {
    const moved = await until('the events counter to grow', async () => {
      const n = await accepted();
      return n > first && n;
    });
    const rate = await until('a non-zero events-in rate', async () => {
      const t = (await page.locator('[data-testid=events-rate] .tile-value').textContent()).trim();
      return /^[1-9]|^0\.[0-9]*[1-9]/.test(t) && t;
    });
    console.log(`overview: events accepted ${first} → ${moved}, rate ${rate}, ${posted} posted`);
    const summary = await until('every process to be ready', async () => {
      const t = await page.locator('[data-testid=processes-summary]').textContent();
      const m = /(\d+) of (\d+) processes ready/.exec(t || '');
      return m && Number(m[1]) === Number(m[2]) && Number(m[2]) >= 3 && t;
    });
    console.log(`overview: ${summary}`);
    const rows = await page.locator('tr[data-process]').count();
    assert.ok(rows >= 3, `the process table lists every process (${rows})`);
    // The SLO section answers one way or the other (no Prometheus: a note, not an error).
    await until('the SLO section to load', async () => (await page.locator('#ov-slo + *').count()) > 0 && !/Loading/.test(await page.locator('#ov-slo + *').first().textContent()));
    await page.waitForTimeout(2500); // a few more samples for the charts
    await shot('overview.png');
  } finally {
    posting = false;
    await poster;
  }
});

step(`3. dead letters: ${DLQ_LETTERS} letters shown, filter works, replay all drains the DLQ into the sink`, { timeout: STEP_MS }, async () => {
  assert.ok(DLQ_LETTERS > 0, 'DLQ_LETTERS > 0');
  // Let the load of step 2 reach the sink first, so that the sink's count moves only by the replay.
  let prev = -1;
  await until('the sink to settle', async () => {
    const s = await sinkStats();
    const settled = s.unique === prev;
    prev = s.unique;
    return settled;
  }, { every: 2000, timeout: 60_000 });
  const before = await sinkStats();

  await go('dlq');
  const depth = () => page.locator('[data-testid=dlq-depth-forwarder]').textContent();
  await until(`the forwarder DLQ to show ${DLQ_LETTERS} letters`, async () => Number((await depth()).replace(/[^\d]/g, '')) === DLQ_LETTERS);
  const shown = await page.locator('tr[data-letter]').count();
  assert.equal(shown, Math.min(DLQ_LETTERS, 50), 'one row per letter (first page)');
  await shot('dlq.png');

  // A letter's detail: provenance and payload.
  await page.locator('tr[data-letter] button.link').first().click();
  const detail = await text('section.detail');
  assert.match(detail, /Last error/, 'the detail shows the provenance');
  assert.match(detail, /Payload/, 'the detail shows the payload');

  // A filter that matches nothing, then one that matches the first letter's error.
  await page.fill('input[name=error_contains]', `no-such-error-${RUN_ID}`);
  await page.click('form.filters button[type=submit]');
  await until('the filter to match nothing', async () => /^0 dead letters/.test(await page.locator('[data-testid=dlq-count]').textContent()));
  const err = (await control('GET', '/dlq/forwarder?limit=1')).json.entries[0].last_error || '';
  const needle = err.slice(0, Math.min(12, err.length));
  assert.ok(needle, 'the first letter has an error text to filter on');
  await page.fill('input[name=error_contains]', needle);
  await page.click('form.filters button[type=submit]');
  await until('the filter to match the letters', async () => (await page.locator('tr[data-letter]').count()) > 0);
  await page.click('form.filters button:has-text("Clear")');
  await until('the cleared filter to show every letter', async () => (await page.locator('tr[data-letter]').count()) === Math.min(DLQ_LETTERS, 50));

  // Replay everything: the dialog says how many, a reason is required.
  await page.click('[data-testid=replay-all]');
  const dlg = page.locator('dialog[open]');
  await dlg.waitFor();
  await dlg.locator('button[type=submit]').click(); // no reason: refused in the dialog
  assert.ok(await dlg.isVisible(), 'the dialog stays open without a reason');
  await confirmDialog(new RegExp(`Replay ${DLQ_LETTERS} dead letters\\?`), `console test ${RUN_ID}: the webhook is back`);
  const status = await until('the replay to be announced', async () => {
    const t = await page.locator('#status').textContent();
    return /Replayed \d+ dead letters?/.test(t) && t;
  });
  assert.match(status, new RegExp(`Replayed ${DLQ_LETTERS} dead letters`), status);

  await until('the UI to show an empty forwarder DLQ', async () => {
    await page.click('form.filters button[type=submit]');
    await page.waitForTimeout(500);
    return Number((await depth()).replace(/[^\d]/g, '')) === 0 && (await page.locator('tr[data-letter]').count()) === 0;
  });
  const after = await until(`the sink to receive ${DLQ_LETTERS} more unique alerts`, async () => {
    const s = await sinkStats();
    return s.unique - before.unique >= DLQ_LETTERS && s;
  }, { timeout: 60_000, every: 500 });
  console.log(`dlq: sink unique ${before.unique} → ${after.unique} (duplicates ${after.duplicates})`);
  const api = (await control('GET', '/dlq')).json.dlqs.find((d) => d.name === 'forwarder');
  assert.equal(api.depth, 0, 'the API agrees: the forwarder DLQ is empty');
});

let ruleId;
const TOKEN = `console-route-${RUN_ID}`;
const TEAM = `CONSOLE_${RUN_ID.toUpperCase()}`;

step('4. a rule created in the UI changes routing (tester and event audit say so)', { timeout: STEP_MS }, async () => {
  await go('rules');
  const top = Math.min(0, ...(await control('GET', '/rules')).json.rules.map((r) => r.priority)) - 10;
  await page.selectOption('select[name=match_type]', 'contains');
  await page.fill('input[name=match_string]', TOKEN);
  await page.fill('input[name=priority]', String(top));
  await page.fill('input[name=prod_handling]', 'page_only');
  await page.fill('input[name=dev_handling]', 'ticket_only');
  await page.fill('input[name=team_assignment]', TEAM);
  await page.fill('form.grid-form input[name=reason]', `console test ${RUN_ID}`);
  await page.click('form.grid-form button[type=submit]');
  const created = await until('the rule to be created', async () => /Created rule (\d+)/.exec(await page.locator('#status').textContent()));
  ruleId = Number(created[1]);
  await page.locator(`tr[data-rule="${ruleId}"]`).waitFor();
  await shot('rules.png');

  // The tester: an event with the token matches the new rule.
  const host = `console-route-host-${RUN_ID}`;
  await page.fill('textarea[name=event]', JSON.stringify(event(host, `link down ${TOKEN} on port 7`)));
  await page.click('form:has(textarea[name=event]) button[type=submit]');
  const verdict = await text('[data-testid=rule-test-verdict]');
  assert.match(verdict, new RegExp(`Matched rule ${ruleId}: page_only for team ${TEAM}`), verdict);

  // Routing: an event posted now is handled by the new rule, as the event audit shows. The
  // alerters pick the rule up on the control plane's announcement; events are posted
  // until one was audited with it.
  await go('audit');
  await page.fill('#event-audit-h ~ form input[name=hostname]', host);
  await until(`the event audit to show ${host} handled by rule ${ruleId}`, async () => {
    await ingest([event(host, `link down ${TOKEN} on port 7`)]);
    await page.click('#event-audit-h ~ form button[type=submit]');
    await page.waitForTimeout(1000);
    const rules = await page.locator('section:has(#event-audit-h) [data-testid=event-rule]').allTextContents();
    return rules.includes(String(ruleId));
  }, { timeout: 60_000, every: 1000 });
  const api = (await control('GET', `/events?hostname=${encodeURIComponent(host)}&rule_id=${ruleId}`)).json;
  assert.ok(api.events.length > 0 && api.events[0].team_assignment === TEAM, `the API agrees: ${JSON.stringify(api.events[0])}`);
  await shot('audit.png');
});

step('5. a validation error of the API is shown on its field', { timeout: STEP_MS }, async () => {
  await go('rules');
  await page.selectOption('select[name=match_type]', 'regex');
  await page.fill('input[name=match_string]', '([unclosed');
  await page.fill('input[name=team_assignment]', TEAM);
  await page.click('form.grid-form button[type=submit]');
  const input = page.locator('input[name=match_string]');
  await until('match_string to be marked invalid', async () => (await input.getAttribute('aria-invalid')) === 'true');
  const errId = `${await input.getAttribute('id')}-err`;
  const msg = await text(`#${errId}`);
  assert.match(msg, /match_string/, `the message names the field: ${msg}`);
  const described = await input.getAttribute('aria-describedby');
  assert.ok(described.split(' ').includes(errId), 'the error is tied to the input (aria-describedby)');
});

step('6. a setting changed in the UI converges on every process', { timeout: STEP_MS }, async () => {
  await go('settings');
  const key = 'unhandled_threshold';
  const current = (await control('GET', `/config/${key}`)).json.value;
  const next = String(Number(current) + 1);
  const before = (await control('GET', '/config/versions')).json.version;
  await page.selectOption('select[name=key]', key);
  await page.fill('input[name=value]', next);
  await page.fill('form.grid-form input[name=reason]', `console test ${RUN_ID}`);
  await page.click('form.grid-form button[type=submit]');
  // The page shows the convergence of the new version (not the one it opened with, which
  // had converged already): wait for a converged version above the one before the change.
  const m = await until('the new version to converge', async () => {
    const conv = page.locator('[data-testid=convergence][data-converged=true]');
    if ((await conv.count()) === 0) return false;
    const found = /Converged: all (\d+) processes applied version (\d+)/.exec((await conv.textContent()).trim());
    return found && Number(found[2]) > before && found;
  }, { timeout: 60_000 });
  assert.ok(Number(m[1]) >= 3, `convergence text: ${m[0]}`);
  const v = (await control('GET', '/config/versions')).json;
  assert.ok(v.converged && v.version === Number(m[2]), `the API agrees: ${JSON.stringify(v)}`);
  assert.equal((await control('GET', `/config/${key}`)).json.value, next);
  await shot('settings.png');
});

step('7. a read-only key made in the UI cannot replay', { timeout: STEP_MS }, async () => {
  await go('secrets');
  await until('the secrets and keys to load', async () => (await page.locator('section:has(#keys-h) table').count()) > 0);
  await shot('secrets.png');
  const name = `console-reader-${RUN_ID}`;
  await page.fill('input[name=name]', name);
  for (const s of ['read', 'write', 'admin', 'ingest']) await page.setChecked(`#scope-${s}`, s === 'read');
  await page.click('form:has(input[name=name]) button[type=submit]');
  const keyField = page.locator('[data-testid=new-key]');
  await keyField.waitFor();
  readerKey = await keyField.inputValue();
  assert.match(readerKey, /^mutt_[0-9a-f]{64}$/, 'the new key is shown');
  assert.equal(await keyField.getAttribute('readonly'), '', 'in a read-only field');
  assert.match(await text('.once .warning'), /will not be shown again/);
  await page.locator(`tr[data-key="${name}"]`).waitFor();

  await page.click('#sign-out');
  await page.locator('#api-key').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('mutt.apiKey')), null, 'signing out forgets the key');
  await signIn(readerKey);
  assert.match(await text('#who-name'), new RegExp(`Signed in as ${name} \\(read\\)`));
  assert.equal(await page.locator('nav a[href="#/secrets"]').isVisible(), false, 'the keys view is not offered');

  await go('dlq');
  await page.locator('[data-testid=dlq-count]').waitFor();
  for (const sel of ['[data-testid=replay-all]', '[data-testid=purge-all]', 'button:has-text("Replay")', 'button:has-text("Purge")', 'tr[data-letter] input[type=checkbox]']) {
    assert.equal(await page.locator(sel).count(), 0, `no ${sel} for a read-only key`);
  }
  await go('rules');
  assert.equal(await page.locator('#rule-form-h').count(), 0, 'no rule form for a read-only key');
  assert.equal(await page.locator('tr[data-rule] button').count(), 0, 'no rule actions for a read-only key');
  await go('secrets');
  assert.match(await text('#view .notice'), /needs the admin scope/);

  const r = await http('POST', `${CONTROL_URL}/api/v2/dlq/forwarder/replay`, { key: readerKey, body: { all: true, reason: 'must be refused' } });
  assert.equal(r.status, 403, `the API refuses a replay with a read-only key: ${JSON.stringify(r.json)}`);
});

step('8/9/10. every view: accessible (axe), screenshots non-blank, phone width readable', { timeout: 4 * STEP_MS }, async () => {
  await page.click('#sign-out');
  await page.locator('#api-key').waitFor({ state: 'visible' });
  const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  const failures = [];
  async function audit(label) {
    await page.evaluate(axeSource);
    const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    for (const v of res.violations) {
      const line = `${label}: [${v.impact}] ${v.id}: ${v.help} — ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(', ')}`;
      if (v.impact === 'serious' || v.impact === 'critical') failures.push(line);
      else console.log(`axe (not failing): ${line}`);
    }
  }
  await audit('sign-in');
  await signIn(ADMIN_KEY);
  await page.locator('#nav').waitFor({ state: 'visible' });
  for (const view of ['overview', 'dlq', 'rules', 'settings', 'audit', 'secrets']) {
    await go(view);
    await until(`the ${view} view to load`, async () => (await page.locator('#view .view-body > *').count()) > 0 && (await page.locator('#view .view-body table').count()) > 0);
    await page.waitForTimeout(500);
    await audit(view);
  }
  // A confirmation dialog, too.
  await go('rules');
  await page.locator('tr[data-rule] button:has-text("Delete")').first().click();
  await page.locator('dialog[open]').waitFor();
  await audit('confirmation dialog');
  await page.locator('dialog[open] button:has-text("Cancel")').click();

  await page.setViewportSize({ width: 375, height: 812 });
  await go('overview');
  await until('the overview to load at phone width', async () => (await page.locator('[data-testid=processes-summary]').count()) > 0);
  await page.waitForTimeout(2500);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page does not scroll sideways at 375 px (overflow ${overflow} px); tables scroll in their boxes`);
  await audit('overview at 375 px');
  await shot('overview-phone.png');
  await page.setViewportSize({ width: 1280, height: 800 });

  if (failures.length) console.error(`axe: serious or critical violations:\n${failures.join('\n')}`);
  assert.deepEqual(failures, [], 'no serious or critical accessibility violations');

  // Every screenshot has content: decoded in a blank page (no CSP there) and counted in
  // distinct colours.
  const blank = await browser.newPage();
  try {
    for (const file of shots) {
      const data = `data:image/png;base64,${(await readFile(file)).toString('base64')}`;
      const stats = await blank.evaluate(async (src) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width;
        c.height = img.height;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        const px = g.getImageData(0, 0, c.width, c.height).data;
        const colours = new Set();
        for (let i = 0; i < px.length; i += 16) colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
        return { width: img.width, height: img.height, colours: colours.size };
      }, data);
      assert.ok(stats.width >= 375 && stats.height >= 700, `${path.basename(file)} is ${stats.width}×${stats.height}`);
      assert.ok(stats.colours > 20, `${path.basename(file)} is not blank (${stats.colours} colours)`);
    }
  } finally {
    await blank.close();
  }
  const names = shots.map((f) => path.basename(f)).sort();
  for (const n of ['sign-in.png', 'overview.png', 'dlq.png', 'rules.png', 'settings.png', 'audit.png', 'secrets.png', 'overview-phone.png']) {
    assert.ok(names.includes(n), `screenshot ${n} was written`);
  }
  await writeFile(path.join(SCREENSHOT_DIR, 'index.txt'), `${names.join('\n')}\n`);
});

step('8. no console errors, page errors or CSP violations during the run', {}, () => {
  if (problems.length) console.error(problems.join('\n'));
  assert.deepEqual(problems, [], 'the console ran clean');
});
