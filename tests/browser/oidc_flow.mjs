// Single sign-on in a real browser (headless Chromium): sessiongate in front of
// examples/demo_backend.rs, signing in with node-oidc-provider's own login and
// consent pages (tests/browser/oidc_provider.mjs --interactive). Run by
// tests/it/browser.rs:
//
//     node tests/browser/oidc_flow.mjs <base url> <issuer> <screenshot.png>
//
// A protected page → the login page → "Sign in with Test OP" → the provider's
// login and consent → back on the page with the user and roles from the ID
// token → "Log out" → the page asks for a login again.
import { run } from './lib.mjs';

const [base, issuer, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node oidc_flow.mjs <base url> <issuer> <screenshot.png>');
  process.exit(2);
}

await run('sign-in with an OpenID provider, /app, logout', async ({ page, log, check }) => {
  log(`open ${base}/app while logged out: expect the login page with the provider`);
  await page.goto(`${base}/app`);
  check(new URL(page.url()).pathname === '/.sessiongate/login', `at ${page.url()}`);
  const button = page.getByRole('link', { name: 'Sign in with Test OP' });
  await button.waitFor();
  log(`screenshot of the login page to ${screenshot}`);
  await page.screenshot({ path: screenshot });

  log("click it: expect the provider's login page");
  await Promise.all([page.waitForURL((u) => u.href.startsWith(issuer)), button.click()]);
  await page.locator('input[name=login]').fill('alice');
  await page.locator('input[name=password]').fill('any password will do');
  await page.getByRole('button', { name: 'Sign-in' }).click();

  log('consent: expect /app with the identity from the ID token');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(base) && u.pathname === '/app'),
    page.getByRole('button', { name: 'Continue' }).click(),
  ]);
  await page.getByRole('heading', { name: 'Hello, alice' }).waitFor();
  const roles = await page.locator('b').first().innerText();
  check(roles === 'staff,admin', `roles from the groups claim, renamed: got ${roles}`);

  log('click "Log out": expect the home page, logged out');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(base) && u.pathname === '/'),
    page.getByRole('button', { name: 'Log out' }).click(),
  ]);
  await page.getByText('You are not logged in.').waitFor();

  log(`open ${base}/app again: expect the login page`);
  await page.goto(`${base}/app`);
  check(new URL(page.url()).pathname === '/.sessiongate/login', `at ${page.url()}`);
});
