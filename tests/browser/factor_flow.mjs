// The second factor in a real browser (headless Chromium) with Chrome's
// virtual WebAuthn authenticator (the DevTools protocol's WebAuthn domain),
// against the demo. Run by tests/it/browser.rs:
//
//     node tests/browser/factor_flow.mjs <base url on localhost> <user> <password> <docs dir>
//
// Add a passkey on the enrolment page (recovery codes shown once), sign out;
// the password then leads to the prompt, where the passkey signs in; a
// passkey alone signs in from the login page; an authenticator app set up
// with a code computed here, then asked for after the password. Screenshots
// of the enrolment page and the prompt go to <docs dir>.
import { createHmac } from 'node:crypto';
import { run } from './lib.mjs';

const [base, user, secretWord, docs] = process.argv.slice(2);
if (!docs) {
  console.error('usage: node factor_flow.mjs <base> <user> <password> <docs dir>');
  process.exit(2);
}

// RFC 6238 with SHA-1, 6 digits, 30 s: what an authenticator app computes.
function totp(base32, at = Date.now() / 1000) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

async function signOut(page) {
  await page.goto(`${base}/.sessiongate/logout`);
  await Promise.all([page.waitForLoadState(), page.getByRole('button', { name: 'Sign out' }).click()]);
}

async function signIn(page, next) {
  await page.goto(`${base}/.sessiongate/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(secretWord);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

await run(
  'passkeys and an authenticator app',
  async ({ page, context, log, check }) => {
    log('a virtual authenticator: a platform passkey with user verification');
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });

    log('sign in with the password (no factor yet): straight in');
    await signIn(page, '/.sessiongate/sessions');
    await page.waitForURL((u) => u.pathname === '/.sessiongate/sessions');
    await page.getByRole('heading', { name: 'Sign-in methods' }).waitFor();

    log('the enrolment page: a passkey, or an app with its QR code');
    await page.getByRole('link', { name: 'Add a passkey or an authenticator app' }).click();
    await page.waitForURL((u) => u.pathname === '/.sessiongate/factor/enrol');
    await page.locator('figure.qr svg').waitFor();
    await page.screenshot({ path: `${docs}/factor-enrol.png`, fullPage: true });

    log('add a passkey named "laptop": recovery codes, shown once');
    await page.getByLabel('Name').fill('laptop');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByRole('heading', { name: 'Passkey added' }).waitFor();
    const codes = await page.locator('ol.recovery-codes li').count();
    check(codes === 10, `ten recovery codes, got ${codes}`);
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    check(credentials.length === 1 && credentials[0].isResidentCredential, 'one discoverable credential');
    await page.getByRole('link', { name: 'Continue' }).click();
    await page.waitForURL((u) => u.pathname === '/.sessiongate/sessions');
    await page.getByText('laptop').waitFor();

    log('sign out; the password now leads to the prompt');
    await signOut(page);
    await signIn(page, '/app');
    await page.waitForURL((u) => u.pathname === '/.sessiongate/factor');
    await page.getByRole('button', { name: 'Use a passkey' }).waitFor();
    await page.screenshot({ path: `${docs}/factor-prompt.png` });
    log('the passkey signs in, to the page asked for');
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/app'),
      page.getByRole('button', { name: 'Use a passkey' }).click(),
    ]);
    await page.getByRole('heading', { name: `Hello, ${user}` }).waitFor();

    log('sign out; a passkey alone signs in from the login page');
    await signOut(page);
    await page.goto(`${base}/.sessiongate/login?next=/app`);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/app'),
      page.getByRole('button', { name: 'Sign in with a passkey' }).click(),
    ]);
    await page.getByRole('heading', { name: `Hello, ${user}` }).waitFor();

    log('an authenticator app too, from this fresh session: its key, a code from it');
    await page.goto(`${base}/.sessiongate/factor/enrol`);
    const secret = (await page.locator('#totp-secret').innerText()).trim();
    await page.getByLabel('Code from the app').fill(totp(secret, Date.now() / 1000 - 30));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('heading', { name: 'Authenticator app set up' }).waitFor();

    log('sign out; after the password, a code from the app signs in');
    await signOut(page);
    await signIn(page, '/app');
    await page.waitForURL((u) => u.pathname === '/.sessiongate/factor');
    await page.getByLabel('Code').fill('000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('alert').filter({ hasText: 'That code is not valid.' }).waitFor();
    await page.getByLabel('Code').fill(totp(secret));
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/app'),
      page.getByRole('button', { name: 'Verify' }).click(),
    ]);
    await page.getByRole('heading', { name: `Hello, ${user}` }).waitFor();
  },
  { args: ['--host-resolver-rules=MAP localhost 127.0.0.1'] },
);
