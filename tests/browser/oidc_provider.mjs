// A real, certified OpenID provider (node-oidc-provider) on a loopback port, for
// the OIDC tests (tests/it/oidc.rs and tests/it/browser.rs). Started by the tests:
//
//     node tests/browser/oidc_provider.mjs --client-id ID --client-secret S \
//          --redirect-uri URL [--post-logout-uri URL] [--interactive] [--tamper MODE]
//          [--backchannel-uri URL] [--refresh] [--conform]
//
// It listens on an ephemeral port of 127.0.0.1 and prints one line,
// `issuer http://127.0.0.1:<port>`, once it answers. It ends when stdin closes
// (the test's handle is dropped) or after 120 s, whichever comes first.
//
// Accounts: any login name. `alice` has a verified address at example.com and
// the groups staff and admins; `bob` has a verified address at other.test and
// the group contractors; `carol` an unverified address at example.com and the
// group staff; any other name gets only `sub` and `preferred_username`.
//
// --interactive: the provider's own login and consent pages (a browser drives
// them). Without it, every authorization request signs in as the login_hint
// (default alice) at once, so an HTTP client can run the flow. A hint ending
// in `:mfa` (`alice:mfa`) signs in as `alice` with amr ["pwd", "mfa"] and
// acr "mfa-acr": what a provider says after a second factor.
//
// --backchannel-uri URL: Back-Channel Logout on, the client registered with
// that URL and backchannel_logout_session_required (ID tokens carry `sid`).
// Signing out at /session/end then POSTs a logout token there. For the
// refusal cases, GET /test/logout-token mints one as the provider would,
// with what the query changes (sub, sid, aud, jti, iat as seconds ago,
// nonce, events=none, key=unknown): test infrastructure, never a provider's.
//
// --conform: ID tokens carry only `sub` and the token's own claims, as
// certified providers do by default; the rest is at the userinfo endpoint.
//
// --refresh: the client may use refresh tokens; every sign-in gets one, and each
// use rotates it (the old one is refused after). For the re-check tests,
// test infrastructure, never a provider's:
//   GET /test/account?user=U&groups=a,b   U's groups become a and b
//   GET /test/account?user=U&disabled=1   U no longer exists (refresh: invalid_grant)
//   GET /test/outage?on=1                 /token and /me answer 503 until ?on=0
//   GET /test/refreshes                   how many refresh grants succeeded
//   GET /test/last-refresh-token          the refresh token the last grant gave
//
// --tamper MODE rewrites the ID token of every token response, the way a broken
// or hostile provider would, to test that sessiongate refuses it:
//   nonce      a nonce other than the one sent       (re-signed with the real key)
//   audience   aud = another client                  (re-signed with the real key)
//   expired    exp and iat an hour in the past       (re-signed with the real key)
//   unknown    signed by a key not in the JWKS
//   none       `alg: none`, no signature
//   hs256      HS256 keyed with the provider's public key (algorithm confusion)
//   rotated    signed by a second key that the JWKS lists only from the first
//              authorization request on (a key rotation: must be accepted)
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { createHmac } from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const { values: opt } = parseArgs({
  options: {
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'post-logout-uri': { type: 'string', multiple: true, default: [] },
    interactive: { type: 'boolean', default: false },
    tamper: { type: 'string', default: '' },
    'backchannel-uri': { type: 'string', default: '' },
    refresh: { type: 'boolean', default: false },
    conform: { type: 'boolean', default: false },
  },
});
if (!opt['client-id'] || !opt['redirect-uri']) {
  console.error('usage: oidc_provider.mjs --client-id ID --client-secret S --redirect-uri URL ...');
  process.exit(2);
}
setTimeout(() => process.exit(0), 120_000).unref();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

const DISABLED = new Set();
let outage = false;
let refreshes = 0;
let lastRefreshToken = '';
const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['staff', 'admins'] },
  bob: { email: 'bob@other.test', email_verified: true, groups: ['contractors'] },
  carol: { email: 'carol@example.com', email_verified: false, groups: ['staff'] },
};

async function key(kid) {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, publicKey, jwk, pub };
}
const main = await key('main');
const rotated = await key('rotated');
const unknown = await key('unknown');
let rotatedPublished = false;

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: opt['client-id'],
      client_secret: opt['client-secret'],
      redirect_uris: opt['redirect-uri'],
      post_logout_redirect_uris: opt['post-logout-uri'],
      grant_types: opt.refresh ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: opt['client-secret'] ? 'client_secret_basic' : 'none',
      ...(opt['backchannel-uri']
        ? { backchannel_logout_uri: opt['backchannel-uri'], backchannel_logout_session_required: true }
        : {}),
    },
  ],
  jwks: { keys: [main.jwk] },
  cookies: { keys: ['test-only-cookie-key-0123456789'] },
  pkce: { required: () => true },
  // The claims go into the ID token itself, unless --conform: then only to
  // the userinfo endpoint (sessiongate's `userinfo = true`).
  conformIdTokenClaims: opt.conform,
  claims: {
    // acr and amr with the openid scope: in every ID token that has them
    // (the `:mfa` sign-ins), as a provider that does MFA puts them.
    openid: ['sub', 'acr', 'amr'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  acrValues: ['mfa-acr'],
  features: {
    devInteractions: { enabled: opt.interactive },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: Boolean(opt['backchannel-uri']) },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Its back-channel POSTs refuse loopback addresses (SSRF protection): the
  // gate under test is on one. Without the protecting dispatcher, for tests only.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  findAccount: async (ctx, id) =>
    DISABLED.has(id)
      ? undefined
      : {
          accountId: id,
          claims: async () => ({ sub: id, preferred_username: id, name: id, ...(ACCOUNTS[id] ?? {}) }),
        },
  ...(opt.refresh ? { issueRefreshToken: async () => true, rotateRefreshToken: true } : {}),
  ttl: { Session: 600, Interaction: 600, Grant: 600, AuthorizationCode: 60, IdToken: 300, AccessToken: 300 },
});
// Refresh grants that succeeded, for /test/refreshes.
provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params.grant_type === 'refresh_token') refreshes += 1;
  if (ctx.body?.refresh_token) lastRefreshToken = ctx.body.refresh_token;
});
provider.on('server_error', (ctx, err) => console.error('provider error:', err));
provider.on('backchannel.error', (ctx, err) => console.error('back-channel logout error:', err.message, err.cause?.message ?? ''));

// Without --interactive: sign in as the login_hint and grant what was asked.
if (!opt.interactive) {
  provider.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const hint = details.params.login_hint || 'alice';
    const mfa = hint.endsWith(':mfa');
    const accountId = mfa ? hint.slice(0, -':mfa'.length) : hint;
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    const login = mfa ? { accountId, amr: ['pwd', 'mfa'], acr: 'mfa-acr' } : { accountId, amr: ['pwd'] };
    const to = await provider.interactionResult(
      ctx.req,
      ctx.res,
      { login, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    ctx.redirect(to);
  });
}

async function tamper(idToken) {
  const payload = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims, k, kid) =>
    new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(k.privateKey);
  switch (opt.tamper) {
    case 'nonce':
      return sign({ ...payload, nonce: 'not-the-nonce-that-was-sent' }, main, 'main');
    case 'audience':
      return sign({ ...payload, aud: 'another-client' }, main, 'main');
    case 'expired':
      return sign({ ...payload, iat: now - 7200, exp: now - 3600 }, main, 'main');
    case 'unknown':
      return sign(payload, unknown, 'unknown');
    case 'rotated':
      return sign(payload, rotated, 'rotated');
    case 'none': {
      const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${part({ alg: 'none', typ: 'JWT' })}.${part(payload)}.`;
    }
    case 'hs256': {
      const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${part({ alg: 'HS256', typ: 'JWT', kid: 'main' })}.${part(payload)}`;
      const pem = await jose.exportSPKI(main.publicKey);
      return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
    }
    default:
      throw new Error(`unknown --tamper mode ${opt.tamper}`);
  }
}

// The re-check tests' controls (see the header).
provider.use(async (ctx, next) => {
  const q = Object.fromEntries(new URL(ctx.href).searchParams);
  if (ctx.path === '/test/account') {
    if (q.groups !== undefined) {
      ACCOUNTS[q.user] = { ...(ACCOUNTS[q.user] ?? {}), groups: q.groups ? q.groups.split(',') : [] };
    }
    if (q.disabled === '1') DISABLED.add(q.user);
    ctx.body = 'ok';
    return;
  }
  if (ctx.path === '/test/outage') {
    outage = q.on === '1';
    ctx.body = 'ok';
    return;
  }
  if (ctx.path === '/test/last-refresh-token') {
    ctx.body = lastRefreshToken;
    return;
  }
  if (ctx.path === '/test/refreshes') {
    ctx.body = String(refreshes);
    return;
  }
  if (outage && (ctx.path === '/token' || ctx.path === '/me')) {
    ctx.status = 503;
    ctx.body = 'down for maintenance';
    return;
  }
  return next();
});

// A logout token as the provider makes them, changed as the query says.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/test/logout-token') return next();
  const q = Object.fromEntries(new URL(ctx.href).searchParams);
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer,
    aud: q.aud ?? opt['client-id'],
    iat: now - Number(q.iat ?? 0),
    exp: now - Number(q.iat ?? 0) + 120,
    jti: q.jti ?? crypto.randomUUID(),
    ...(q.events === 'none' ? {} : { events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }),
    ...(q.sub ? { sub: q.sub } : {}),
    ...(q.sid ? { sid: q.sid } : {}),
    ...(q.nonce ? { nonce: q.nonce } : {}),
  };
  const k = q.key === 'unknown' ? unknown : main;
  ctx.body = await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: q.key === 'unknown' ? 'unknown' : 'main', typ: 'logout+jwt' })
    .sign(k.privateKey);
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/auth') rotatedPublished = true;
  await next();
  if (ctx.path === '/token' && opt.tamper && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token) };
  }
  if (ctx.path === '/jwks' && opt.tamper === 'rotated' && rotatedPublished && ctx.body) {
    ctx.body = { keys: [...ctx.body.keys, rotated.pub] };
  }
});

server.on('request', provider.callback());
console.log(`issuer ${issuer}`);
