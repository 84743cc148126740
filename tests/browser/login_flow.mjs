// The login flow in a real browser (headless Chromium), against a running
// sessiongate in front of examples/demo_backend.rs. Run by tests/browser.rs:
//
//     node tests/browser/login_flow.mjs <base url> <user> <password> <screenshot.png>
//
// A protected page sends the browser to the built-in login; signing in lands on
// the page; the demo's "Log out" button ends the session, so the page asks for a
// login again. Exits 0 on success, 1 with the failing step on stderr otherwise.
// Every step has a timeout, and the whole run is capped at 55 seconds.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const TOTAL_MS = 55_000;
const STEP_MS = 10_000;
const LOGIN_PATH = '/.sessiongate/login';

const [base, user, password, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node login_flow.mjs <base url> <user> <password> <screenshot.png>');
  process.exit(2);
}

const watchdog = setTimeout(() => {
  console.error(`FAIL: the whole flow took longer than ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);

let step = 'start';
const log = (s) => {
  step = s;
  console.log(`- ${s}`);
};
const check = (ok, what) => {
  if (!ok) throw new Error(what);
};

async function expectLoginPage(page, next) {
  const url = new URL(page.url());
  check(url.pathname === LOGIN_PATH, `expected the login page, got ${page.url()}`);
  check(
    url.searchParams.get('next') === next,
    `expected next=${next} in ${page.url()}`,
  );
  await page.locator('label[for=username]').waitFor({ state: 'visible' });
}

// A fresh profile: no cookies from an earlier run.
const profile = mkdtempSync(join(tmpdir(), 'sessiongate-chromium-'));
let context;
let status = 0;
try {
  log('launch chromium');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
    viewport: { width: 800, height: 600 },
    timeout: 20_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);

  log(`open ${base}/app while logged out: expect the login page`);
  await page.goto(`${base}/app`);
  await expectLoginPage(page, '/app');

  log(`screenshot of the login page to ${screenshot}`);
  await page.screenshot({ path: screenshot });

  log(`sign in as ${user}: expect /app`);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/app'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await page.getByRole('heading', { name: `Hello, ${user}` }).waitFor();

  log('click "Log out": expect the home page, logged out');
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/'),
    page.getByRole('button', { name: 'Log out' }).click(),
  ]);
  await page.getByText('You are not logged in.').waitFor();

  log(`open ${base}/app again: expect the login page`);
  await page.goto(`${base}/app`);
  await expectLoginPage(page, '/app');

  console.log('OK: login, /app, logout, login page again');
} catch (e) {
  let where = '';
  try {
    const page = context?.pages()[0];
    if (page) {
      const text = await page.locator('body').innerText({ timeout: 1000 });
      where = ` (at ${page.url()}, page text: ${JSON.stringify(text.slice(0, 300))})`;
    }
  } catch {
    // the browser is gone; the error says why
  }
  console.error(`FAIL at step "${step}"${where}:\n${e?.stack ?? e}`);
  status = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(status);
