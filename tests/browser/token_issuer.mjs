// A real OAuth 2.0 authorization server (node-oidc-provider) that issues JWT
// access tokens by the client-credentials grant, on a loopback port, for the
// Bearer tests (tests/it/bearer.rs). Started by the tests:
//
//     node tests/browser/token_issuer.mjs
//
// It listens on an ephemeral port of 127.0.0.1 and prints one line,
// `issuer http://127.0.0.1:<port>`, once it answers. It ends when stdin closes
// (the test's handle is dropped) or after 120 s, whichever comes first.
//
// The client `ci-job` (secret `ci-job-secret-0123456789`, client_secret_basic)
// gets, from POST /token with grant_type=client_credentials, an RS256 access
// token in the JWT format of RFC 9068 (typ at+jwt, kid main) for the resource
// urn:sessiongate:test (also the default resource): iss the issuer, sub and
// client_id `ci-job`, aud urn:sessiongate:test, scope the granted ones of
// `read deploy`, iat, exp (5 minutes), jti.
//
// Control endpoints for the tests, answered before the provider sees them:
//   GET  /test/token?mode=M  a token minted here with the claims a real one
//        carries (scope "read deploy"), changed as M says:
//          valid     signed with the current key (a fresh one each call)
//          none      `alg: none`, no signature
//          hs256     HS256 keyed with the main public key's PEM (algorithm confusion)
//          issuer    iss = another issuer        (signed with the real key)
//          audience  aud = urn:other             (signed with the real key)
//          expired   exp and iat an hour in the past
//          future    nbf and iat an hour in the future
//          unknown   signed by a key not in the JWKS (kid unknown)
//          huge      a valid signature, padded past 16 KiB
//          rotated   signed by a second key (kid rotated) that the JWKS lists
//                    only after POST /test/rotate
//   POST /test/rotate     the JWKS lists `main` and `rotated` from now on
//   POST /test/jwks-down  the JWKS answers 503 (discovery still works)
//   POST /test/jwks-up    the JWKS answers again
// The JWKS is served here too, at the path discovery's jwks_uri names, so
// that rotation and downtime are the test's to decide.
import { createServer } from 'node:http';
import { createHmac, randomUUID } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const CLIENT_ID = 'ci-job';
const CLIENT_SECRET = 'ci-job-secret-0123456789';
const RESOURCE = 'urn:sessiongate:test';
const SCOPE = 'read deploy';
const TTL = 300;

setTimeout(() => process.exit(0), 120_000).unref();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

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
let jwksDown = false;

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
    },
  ],
  jwks: { keys: [main.jwk] },
  cookies: { keys: ['test-only-cookie-key-0123456789'] },
  scopes: ['openid', ...SCOPE.split(' ')],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience: RESOURCE,
          accessTokenTTL: TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: TTL },
});
provider.on('server_error', (ctx, err) => console.error('provider error:', err));

const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

// A token with the claims the provider's own carry (models/formats/jwt.js).
async function mint(mode) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    jti: randomUUID(),
    sub: CLIENT_ID,
    iat: now,
    exp: now + TTL,
    scope: SCOPE,
    client_id: CLIENT_ID,
    iss: issuer,
    aud: RESOURCE,
  };
  const sign = (c, k) =>
    new jose.SignJWT(c)
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: k.jwk.kid })
      .sign(k.privateKey);
  switch (mode) {
    case 'valid':
      return sign(claims, main);
    case 'none':
      return `${part({ alg: 'none', typ: 'at+jwt', kid: 'main' })}.${part(claims)}.`;
    case 'hs256': {
      const input = `${part({ alg: 'HS256', typ: 'at+jwt', kid: 'main' })}.${part(claims)}`;
      const pem = await jose.exportSPKI(main.publicKey);
      return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
    }
    case 'issuer':
      return sign({ ...claims, iss: 'https://other-issuer.test' }, main);
    case 'audience':
      return sign({ ...claims, aud: 'urn:other' }, main);
    case 'expired':
      return sign({ ...claims, iat: now - 3600 - TTL, exp: now - 3600 }, main);
    case 'future':
      return sign({ ...claims, iat: now + 3600, nbf: now + 3600, exp: now + 3600 + TTL }, main);
    case 'unknown':
      return sign(claims, unknown);
    case 'huge':
      return sign({ ...claims, padding: 'x'.repeat(16 * 1024) }, main);
    case 'rotated':
      return sign(claims, rotated);
    default:
      return undefined;
  }
}

function send(res, status, type, body) {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const url = new URL(req.url, issuer);
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case 'GET /test/token': {
        const token = await mint(url.searchParams.get('mode') ?? 'valid');
        if (token === undefined) return send(res, 400, 'text/plain', 'unknown mode\n');
        return send(res, 200, 'text/plain', token);
      }
      case 'POST /test/rotate':
        rotatedPublished = true;
        return send(res, 204, 'text/plain', '');
      case 'POST /test/jwks-down':
        jwksDown = true;
        return send(res, 204, 'text/plain', '');
      case 'POST /test/jwks-up':
        jwksDown = false;
        return send(res, 204, 'text/plain', '');
      case 'GET /jwks': {
        if (jwksDown) return send(res, 503, 'text/plain', 'down for the test\n');
        const keys = rotatedPublished ? [main.pub, rotated.pub] : [main.pub];
        return send(res, 200, 'application/jwk-set+json', JSON.stringify({ keys }));
      }
      default:
        return callback(req, res);
    }
  } catch (err) {
    console.error('token issuer error:', err);
    return send(res, 500, 'text/plain', 'error\n');
  }
});
console.log(`issuer ${issuer}`);
