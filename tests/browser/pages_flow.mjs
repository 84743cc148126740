// The pages people use, in a real browser (headless Chromium): a user's own
// sessions and the admin page, against sessiongate in front of
// examples/demo_backend.rs. Run by tests/it/browser.rs:
//
//     node tests/browser/pages_flow.mjs <base url> <admin url> <user> <password> <admin token> <docs dir>
//
// Your sessions: two of them (this browser and a phone), readable devices and
// times, "Sign out all other sessions". Admin (HTTP Basic, the token as the
// password): the totals, the filter by user, "Revoke all of <user>'s
// sessions". Screenshots of both pages go to <docs dir>.
import { request } from 'node:http';
import { run } from './lib.mjs';

const [base, admin, user, password, token, docs] = process.argv.slice(2);
if (!docs) {
  console.error('usage: node pages_flow.mjs <base> <admin> <user> <password> <token> <docs dir>');
  process.exit(2);
}
const PHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';

// A second session of the same user, signed in "from a phone".
function signInFromPhone() {
  const body = new URLSearchParams({ username: user, password, next: '/' }).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/.sessiongate/login`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          origin: base,
          'user-agent': PHONE,
        },
      },
      (res) => {
        res.resume();
        res.statusCode === 303 ? resolve() : reject(new Error(`phone login: ${res.statusCode}`));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

await run(
  'your sessions and the admin page',
  async ({ page, log, check }) => {
    log('a session from a phone, then sign in here and open "Your sessions"');
    await signInFromPhone();
    await page.goto(`${base}/.sessiongate/login?next=/.sessiongate/sessions`);
    await page.getByLabel('Username').fill(user);
    await page.getByLabel('Password').fill(password);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.sessiongate/sessions'),
      page.getByRole('button', { name: 'Sign in', exact: true }).click(),
    ]);
    const items = page.locator('ul.sessions li');
    check((await items.count()) === 2, `two sessions, got ${await items.count()}`);
    await page.getByText('Safari on iPhone').waitFor();
    await page.getByText('This session').waitFor();
    const when = page.locator('ul.sessions time').first();
    check((await when.innerText()) === 'just now', `a time in words: ${await when.innerText()}`);
    check(((await when.getAttribute('title')) ?? '').endsWith('GMT'), 'the exact time on hover');
    const box = await page.locator('main').boundingBox();
    const width = page.viewportSize().width;
    check(
      Math.abs(box.x - (width - box.x - box.width)) <= 2,
      `the card is centred: ${box.x} left, ${width - box.x - box.width} right`,
    );
    await page.screenshot({ path: `${docs}/sessions.png` });

    log('"Sign out all other sessions": only this one is left');
    await page.getByRole('button', { name: 'Sign out all other sessions' }).click();
    await page.getByText('This is your only session.').waitFor();
    check((await items.count()) === 1, 'one session left');

    log('the admin page: totals, filter, revoke all of the user\'s sessions');
    await signInFromPhone();
    await page.goto(`${admin}/`);
    await page.getByText('live sessions').waitFor();
    const logins = await page.locator('.totals div', { hasText: 'logins, last hour' }).locator('b').innerText();
    check(Number(logins) >= 3, `logins in the last hour: ${logins}`);
    await page.getByText('Safari on iPhone').first().waitFor();
    await page.screenshot({ path: `${docs}/admin.png`, fullPage: true });
    await page.getByLabel('User').fill(user);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('button', { name: `Revoke all of ${user}'s sessions` }).click();
    await page.getByText('No sessions.').waitFor();

    log('this browser\'s session was among them: the app asks for a login');
    await page.goto(`${base}/app`);
    check(new URL(page.url()).pathname === '/.sessiongate/login', `at ${page.url()}`);
  },
  {
    viewport: { width: 1100, height: 720 },
    httpCredentials: { username: 'admin', password: token, origin: admin },
  },
);
