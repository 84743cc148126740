// The express-session peer of bench/run.sh: the same job as sessiongate's
// protected route, done the usual Node way. One process (MemoryStore lives in
// it, so it cannot be clustered). Usage:
//
//   SESSION_SECRET=... node server.js <listen port> <backend host:port>
//
// GET /login  sets req.session.user (a new session + Set-Cookie), answers 200;
// any other path: with a session user, proxied to the backend with X-User set;
// without one, 401.
'use strict';

const http = require('http');
const express = require('express');
const session = require('express-session');
const { createProxyMiddleware } = require('http-proxy-middleware');

const [port, backend] = process.argv.slice(2);
if (!port || !backend || !process.env.SESSION_SECRET) {
  console.error('usage: SESSION_SECRET=... node server.js <port> <backend host:port>');
  process.exit(2);
}

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(
  session({
    secret: process.env.SESSION_SECRET,
    resave: false,
    saveUninitialized: false,
    // store: the default MemoryStore.
  }),
);

let n = 0;
app.get('/login', (req, res) => {
  req.session.user = `u${++n}`;
  res.status(200).type('text/plain').send('ok\n');
});

// Keep-alive to the backend, like nginx's `upstream { keepalive 64; }` and
// pingora's pool (http-proxy opens a connection per request without an agent).
const agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 });
const proxy = createProxyMiddleware({
  target: `http://${backend}`,
  agent,
  xfwd: false,
  on: {
    proxyReq: (proxyReq, req) => {
      proxyReq.setHeader('X-User', req.session.user);
      proxyReq.removeHeader('cookie');
    },
  },
});

app.use((req, res, next) => {
  if (req.session && req.session.user) {
    return proxy(req, res, next);
  }
  res.status(401).json({ error: 'unauthenticated' });
});

const server = app.listen(Number(port), '127.0.0.1', () => {
  console.log(`express peer on 127.0.0.1:${port} -> ${backend}`);
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 61_000;
process.on('SIGTERM', () => process.exit(0));
