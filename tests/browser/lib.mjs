// What the browser tests share: headless Chromium in a fresh profile, a step
// log, a watchdog on the whole run, and one way to report a failure.
//
//     await run('login flow', async ({ page, log, check }) => { ... });
//
// Exits 0 when the body returns, 1 with the failing step, the page's URL and
// its text on stderr otherwise. Every step has a 10 s timeout; the whole run
// is capped at 55 s.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const TOTAL_MS = 55_000;
const STEP_MS = 10_000;

export async function run(
  name,
  body,
  { viewport = { width: 800, height: 600 }, httpCredentials = undefined, args = [] } = {},
) {
  const watchdog = setTimeout(() => {
    console.error(`FAIL: the ${name} took longer than ${TOTAL_MS / 1000} s`);
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
  // A fresh profile: no cookies from an earlier run.
  const profile = mkdtempSync(join(tmpdir(), 'sessiongate-chromium-'));
  let context;
  let status = 0;
  try {
    log('launch chromium');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      // Without the background-networking flags Chromium keeps calling out,
      // which a closed network refuses.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        ...args,
      ],
      viewport,
      httpCredentials,
      timeout: 20_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    await body({ page, context, log, check });
    console.log(`OK: ${name}`);
  } catch (e) {
    let where = '';
    try {
      const page = context?.pages()[0];
      if (page) {
        const text = await page.locator('body').innerText({ timeout: 1000 });
        where = ` (at ${page.url()}, page text: ${JSON.stringify(text.slice(0, 400))})`;
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
}
