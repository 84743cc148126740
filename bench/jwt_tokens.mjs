// An issuer of bearer JWTs for bench/run.sh --credentials, one key per
// algorithm sessiongate allows most often (RS256, PS256, ES256, EdDSA):
//
//     node bench/jwt_tokens.mjs OUT_DIR COUNT
//
// It writes COUNT distinct tokens per algorithm to OUT_DIR/tokens-<ALG>.txt,
// one `Authorization: Bearer <token>` line each (bench/cookies.lua's header
// form), every token new to sessiongate, so each request pays the signature
// check; then serves OpenID discovery and the JWKS on an ephemeral port of
// 127.0.0.1, prints `issuer http://127.0.0.1:<port>`, and ends when stdin
// closes. jose comes from tests/browser's node_modules (./test.sh installs it).
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';

const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
const jose = require('jose');

const [outDir, countText] = process.argv.slice(2);
const count = Number(countText);
if (!outDir || !(count > 0)) {
  console.error('usage: node bench/jwt_tokens.mjs OUT_DIR COUNT');
  process.exit(2);
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const keys = [];
const now = Math.floor(Date.now() / 1000);
for (const alg of ALGS) {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  keys.push({ ...(await jose.exportJWK(publicKey)), kid: alg, alg, use: 'sig' });
  const lines = [];
  for (let i = 0; i < count; i++) {
    const token = await new jose.SignJWT({ scope: 'bench', jti: randomUUID() })
      .setProtectedHeader({ alg, kid: alg, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setAudience('bench')
      .setSubject('bench')
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey);
    lines.push(`Authorization: Bearer ${token}`);
  }
  writeFileSync(`${outDir}/tokens-${alg}.txt`, `${lines.join('\n')}\n`);
}

server.on('request', (req, res) => {
  const body =
    req.url === '/.well-known/openid-configuration'
      ? { issuer, jwks_uri: `${issuer}/jwks` }
      : req.url === '/jwks'
        ? { keys }
        : null;
  res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body ?? { error: 'not found' }));
});
console.log(`issuer ${issuer}`);
