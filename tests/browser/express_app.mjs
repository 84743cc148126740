// A real Express app with express-session and connect-redis on a loopback
// port, for the import tests (tests/it/import.rs): the app a team moves behind
// sessiongate. Started by the tests:
//
//     node tests/browser/express_app.mjs --redis-url URL [--prefix sess:] \
//          --secret S [--secret OLDER ...]
//
// The first --secret signs; every one verifies (express-session's rotation).
// It listens on an ephemeral port of 127.0.0.1 and prints one line,
// `issuer http://127.0.0.1:<port>` (the line the tests' node helper waits
// for), once it answers. It ends when stdin closes or after 120 s.
//
// GET /login?user=JSON[&roles=JSON][&cart=JSON][&max_age_ms=N] signs in as
// passport does: req.session.passport = { user: <user> }, with the other
// fields beside it, and answers with the session's cookie. The user is JSON
// so the tests can store the types serializeUser may return (a string, a
// number, an object). GET /whoami answers the session's passport.user.
import { parseArgs } from 'node:util';
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const { values: opt } = parseArgs({
  options: {
    'redis-url': { type: 'string' },
    prefix: { type: 'string', default: 'sess:' },
    secret: { type: 'string', multiple: true },
  },
});
if (!opt['redis-url'] || !opt.secret?.length) {
  console.error('usage: express_app.mjs --redis-url URL --secret S [--secret ...]');
  process.exit(2);
}
setTimeout(() => process.exit(0), 120_000).unref();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

const client = createClient({ url: opt['redis-url'] });
client.on('error', (e) => console.error('redis:', e.message));
await client.connect();

const app = express();
app.use(
  session({
    store: new RedisStore({ client, prefix: opt.prefix }),
    secret: opt.secret,
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 24 * 3600 * 1000 },
  }),
);
app.get('/login', (req, res) => {
  const q = req.query;
  req.session.passport = { user: JSON.parse(q.user) };
  if (q.roles) req.session.roles = JSON.parse(q.roles);
  if (q.cart) req.session.cart = JSON.parse(q.cart);
  if (q.max_age_ms) req.session.cookie.maxAge = Number(q.max_age_ms);
  res.send('ok');
});
app.get('/whoami', (req, res) => res.json(req.session.passport?.user ?? null));

const server = app.listen(0, '127.0.0.1', () => {
  console.log(`issuer http://127.0.0.1:${server.address().port}`);
});
