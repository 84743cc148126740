// One sign-in across two unrelated domains in a real browser (headless
// Chromium), over TLS with a throwaway CA, every name resolved to the
// loopback by --host-resolver-rules. Run by tests/it/browser.rs:
//
//     node tests/browser/cross_domain_flow.mjs <port> <user> <password> <spki hash>
//
// app.example.org sends the browser to login.test, which asks for the
// password and sends it back; grafana.example.com then needs no password.
// Each host holds its own __Host- cookie. Signing out on app.example.org
// ends the sign-in on the other two hosts as well.
import { run } from './lib.mjs';

const [port, user, password, spki] = process.argv.slice(2);
if (!spki) {
  console.error('usage: node cross_domain_flow.mjs <port> <user> <password> <spki hash>');
  process.exit(2);
}
const LOGIN = 'login.test';
const APP = 'app.example.org';
const GRAFANA = 'grafana.example.com';
const at = (host, path) => `https://${host}:${port}${path}`;

await run(
  'one sign-in on two domains, one sign-out',
  async ({ page, context, log, check }) => {
    log(`open ${at(APP, '/page?x=1')}: expect the login form on ${LOGIN}`);
    // The app's host answers with a page that moves on to the login site by
    // itself: a cross-origin 303 could break the CSP form-action of a form
    // the way began with (a logout, then a protected page).
    const atLoginForm = (u) => u.hostname === LOGIN && u.pathname === '/.sessiongate/login';
    await page.goto(at(APP, '/page?x=1'));
    await page.waitForURL(atLoginForm);

    log('sign in: back on the app, at the page asked for');
    await page.getByLabel('Username').fill(user);
    await page.getByLabel('Password').fill(password);
    await Promise.all([
      page.waitForURL(at(APP, '/page?x=1')),
      page.getByRole('button', { name: 'Sign in', exact: true }).click(),
    ]);

    log(`open ${at(GRAFANA, '/d/1')}: no password asked this time`);
    const seen = [];
    page.on('framenavigated', (f) => f === page.mainFrame() && seen.push(f.url()));
    // The login site answers with a page that moves on by itself (a
    // cross-origin 303 there could break its forms' CSP form-action).
    await page.goto(at(GRAFANA, '/d/1'));
    await page.waitForURL(at(GRAFANA, '/d/1'));
    check(!seen.some((u) => atLoginForm(new URL(u))), `the login form on the way: ${seen}`);

    log('each host holds a cookie of its own; the hop cookie is gone');
    const cookies = await context.cookies();
    const sid = (host) => cookies.find((c) => c.name === '__Host-sid' && c.domain === host);
    for (const host of [LOGIN, APP, GRAFANA]) {
      const c = sid(host);
      check(c && c.secure && c.httpOnly, `no secure __Host-sid for ${host}: ${JSON.stringify(cookies)}`);
    }
    check(new Set([LOGIN, APP, GRAFANA].map((h) => sid(h).value)).size === 3, 'one cookie shared by two hosts');
    check(!cookies.some((c) => c.name === '__Host-sg_hop'), 'a hop cookie left behind');

    log(`sign out on ${APP}`);
    await page.goto(at(APP, '/.sessiongate/logout'));
    // Its home page is protected: on to the login form, across origins.
    await Promise.all([
      page.waitForURL(atLoginForm),
      page.getByRole('button', { name: 'Sign out' }).click(),
    ]);

    log(`${GRAFANA} and ${LOGIN} are signed out too`);
    await page.goto(at(GRAFANA, '/d/1'));
    await page.waitForURL(atLoginForm);
    const me = await page.goto(at(LOGIN, '/.sessiongate/me'));
    check(me.status() === 401, `the login site's session survived: ${me.status()}`);
  },
  {
    args: [
      `--host-resolver-rules=MAP ${LOGIN} 127.0.0.1, MAP ${APP} 127.0.0.1, MAP ${GRAFANA} 127.0.0.1`,
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
  },
);
