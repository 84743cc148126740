// The login flow in a real browser (headless Chromium), against a running
// sessiongate in front of examples/demo_backend.rs. Run by tests/it/browser.rs:
//
//     node tests/browser/login_flow.mjs <base url> <user> <password> <screenshot.png>
//
// A protected page sends the browser to the built-in login; signing in lands on
// the page; the demo's "Log out" button ends the session, so the page asks for a
// login again.
import { run } from './lib.mjs';

const LOGIN_PATH = '/.sessiongate/login';

const [base, user, password, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node login_flow.mjs <base url> <user> <password> <screenshot.png>');
  process.exit(2);
}

async function expectLoginPage(page, check, next) {
  const url = new URL(page.url());
  check(url.pathname === LOGIN_PATH, `expected the login page, got ${page.url()}`);
  check(url.searchParams.get('next') === next, `expected next=${next} in ${page.url()}`);
  await page.locator('label[for=username]').waitFor({ state: 'visible' });
}

await run('login, /app, logout, login page again', async ({ page, log, check }) => {
  log(`open ${base}/app while logged out: expect the login page`);
  await page.goto(`${base}/app`);
  await expectLoginPage(page, check, '/app');

  log(`screenshot of the login page to ${screenshot}`);
  await page.screenshot({ path: screenshot });

  log('on a phone-sized screen the page fits without sideways scrolling');
  await page.setViewportSize({ width: 360, height: 740 });
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  check(fits, 'the login page is wider than a phone');
  const card = await page.locator('main').boundingBox();
  check(card.x >= 8 && card.x + card.width <= 352, `the card has a margin: ${JSON.stringify(card)}`);
  await page.setViewportSize({ width: 800, height: 600 });

  log('a wrong password: the message, and the user name still filled in');
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(`${password}-wrong`);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'Invalid username or password.' }).waitFor();
  check((await page.getByLabel('Username').inputValue()) === user, 'the user name is kept');

  log(`sign in as ${user}: expect /app`);
  await page.getByLabel('Password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/app'),
    page.getByRole('button', { name: 'Sign in', exact: true }).click(),
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
  await expectLoginPage(page, check, '/app');
});
