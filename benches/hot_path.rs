//! Micro-benchmarks of what every request to a protected route pays before it is
//! proxied, and of what a login pays (`cargo bench --bench hot_path`):
//!
//! - `cookie/verify`: `Signer::verify` of a valid `<id>.<sig>` value (hex decode,
//!   HMAC-SHA256 with the pre-keyed state, constant-time compare);
//! - `store/load/<n>`: `MemoryStore::load` (through the `SessionStore` trait) of
//!   a random one of `n` live sessions;
//! - `hot_path/verify+load/<n>`: the two together, from a random cookie value
//!   (verify, `SessionKey::of` = SHA-256 of the id, load);
//! - `hot_path/resolve/<n>`: `SessionManager::resolve` on a `Cookie` header, which is
//!   what the proxy calls (cookie parsing + the above);
//! - `baseline/rwlock_hashmap_get/<n>`: for scale, the same lookup in a std
//!   `HashMap` behind an `RwLock` (no expiry, no LRU);
//! - `login/argon2id_hash`: `users::hash_password`, the cost of one password check;
//! - `routes/decide/<hosts>`: the rule table's decision on a request, with
//!   `hosts` hosts of 10 rules each (half exact names, half wildcards), for
//!   a request to an exact host, to a wildcard's, and to a host none names
//!   (issue 25 asks at most 1 µs with 1,000 hosts).
//!
//! The memory store's futures are always ready, so they are polled once with a
//! no-op waker (`block`), as in the unit tests of `src/session.rs`.

use std::collections::HashMap;
use std::future::Future;

use futures::FutureExt;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::header::{HeaderMap, HeaderValue, COOKIE};
use serde_json::Map;
use sessiongate::{
    now_ms, MemoryOptions, MemoryStore, Secret, Session, SessionId, SessionKey, SessionManager,
    SessionStore, Signer,
};

const COOKIE_NAME: &str = "sid";
const SECRET: &[u8] = b"bench-only-secret-0123456789abcdef-0123456789";

fn block<F: Future>(f: F) -> F::Output {
    // The memory store's futures are always ready: never wait for one.
    f.now_or_never()
        .expect("the memory store's futures are always ready")
}

/// A tiny xorshift: random picks without a dependency, ~1 ns each.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn signer() -> Signer {
    Signer::new(COOKIE_NAME, &[Secret::new(SECRET.to_vec())])
}

/// A store with `n` live sessions (user `u<i>`, roles `user`, as `bench/run.sh`
/// mints them) and the cookie value of each.
fn populated(n: usize) -> (Arc<MemoryStore>, Vec<String>, Vec<SessionKey>) {
    let signer = signer();
    let store = Arc::new(MemoryStore::new(MemoryOptions {
        capacity: n as u64 + n as u64 / 10 + 16,
        anonymous_capacity: n as u64 + n as u64 / 10 + 16,
        idle_timeout: Duration::from_secs(4 * 3600),
        max_per_user: usize::MAX,
    }));
    let now = now_ms();
    let mut cookies = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let id = SessionId::generate();
        let key = SessionKey::of(&id);
        let s = Session::new(
            key,
            Some(format!("u{i}")),
            vec!["user".into()],
            Map::new(),
            now,
            now + 12 * 3600 * 1000,
            Duration::from_secs(2 * 3600),
        );
        block(store.create(s)).expect("memory store cannot fail");
        cookies.push(signer.sign(&id));
        keys.push(key);
    }
    store.sync();
    (store, cookies, keys)
}

fn session_config() -> sessiongate::SessionOptions {
    // Config::parse resolves the secret from the environment, like the real thing.
    std::env::set_var(
        "HOT_PATH_BENCH_SECRET",
        std::str::from_utf8(SECRET).unwrap(),
    );
    let text = r#"
        [server]
        listen = ["127.0.0.1:1"]
        [session]
        secrets = [{ env = "HOT_PATH_BENCH_SECRET" }]
        idle_timeout = "2h"
        [session.cookie]
        name = "sid"
        secure = false
        [upstream.app]
        addrs = ["127.0.0.1:2"]
    "#;
    sessiongate::Config::parse(text, std::path::Path::new("."))
        .expect("bench config is valid")
        .session()
        .clone()
}

fn cookie_verify(c: &mut Criterion) {
    let signer = signer();
    let value = signer.sign(&SessionId::generate());
    c.bench_function("cookie/verify", |b| {
        b.iter(|| signer.verify(black_box(&value)).is_some())
    });
}

/// The request path's `Cookie` header parser against the cookie crate's: a
/// header as browsers send it, with our cookie among others.
fn cookie_header(c: &mut Criterion) {
    let ours = signer().sign(&SessionId::generate());
    let header = format!(
        "_ga=GA1.1.123456789.1700000000; theme=dark; {COOKIE_NAME}={ours}; csrftoken=abcdef0123456789; lang=en"
    );
    let mut g = c.benchmark_group("cookie/find_in_header");
    g.bench_function("sessiongate", |b| {
        b.iter(|| sessiongate::cookie_values(black_box(&header), COOKIE_NAME).next())
    });
    g.bench_function("cookie_crate_split_parse", |b| {
        b.iter(|| {
            cookie::Cookie::split_parse(black_box(header.as_str()))
                .filter_map(Result::ok)
                .find(|c| c.name() == COOKIE_NAME)
                .map(|c| c.value().len())
        })
    });
    g.finish();
}

fn store_and_hot_path(c: &mut Criterion) {
    // Set HOT_PATH_SIZES=1000,100000 to try other sizes. `cargo test` runs this
    // file once without `--bench` (test mode): a small store keeps that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("HOT_PATH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if benching {
                vec![100_000, 1_000_000]
            } else {
                vec![1_000]
            }
        });
    let signer = signer();
    let config = session_config();
    for n in sizes {
        let (store, cookies, keys) = populated(n);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

        let mut g = c.benchmark_group("store/load");
        g.bench_with_input(BenchmarkId::from_parameter(n), &keys, |b, keys| {
            b.iter(|| {
                let key = &keys[rng.below(keys.len())];
                block(store.load(black_box(key)))
                    .expect("memory store cannot fail")
                    .is_some()
            })
        });
        g.finish();

        let mut g = c.benchmark_group("hot_path/verify+load");
        g.bench_with_input(BenchmarkId::from_parameter(n), &cookies, |b, cookies| {
            b.iter(|| {
                let value = &cookies[rng.below(cookies.len())];
                let verified = signer.verify(black_box(value)).expect("valid cookie");
                block(store.load(&SessionKey::of(&verified.id)))
                    .expect("memory store cannot fail")
                    .is_some()
            })
        });
        g.finish();

        // For scale: the same lookup in a plain std HashMap behind an RwLock (no
        // expiry, no LRU, no eviction): what the store's own bookkeeping costs.
        let map: RwLock<HashMap<SessionKey, Arc<Session>>> = RwLock::new(
            keys.iter()
                .map(|k| {
                    let s = block(store.load(k)).expect("memory store cannot fail");
                    (*k, s.expect("live session"))
                })
                .collect(),
        );
        let mut g = c.benchmark_group("baseline/rwlock_hashmap_get");
        g.bench_with_input(BenchmarkId::from_parameter(n), &keys, |b, keys| {
            b.iter(|| {
                let key = &keys[rng.below(keys.len())];
                map.read()
                    .expect("not poisoned")
                    .get(black_box(key))
                    .cloned()
                    .is_some()
            })
        });
        g.finish();
        drop(map);

        let sessions = SessionManager::new(config.clone(), store.clone());
        let headers: Vec<HeaderMap> = cookies
            .iter()
            .take(100_000)
            .map(|v| {
                let mut h = HeaderMap::new();
                let value = format!("theme=dark; {COOKIE_NAME}={v}");
                h.insert(COOKIE, HeaderValue::from_str(&value).expect("ascii"));
                h
            })
            .collect();
        let mut g = c.benchmark_group("hot_path/resolve");
        g.bench_with_input(BenchmarkId::from_parameter(n), &headers, |b, headers| {
            b.iter(|| {
                let h = &headers[rng.below(headers.len())];
                block(sessions.resolve(black_box(h)))
                    .expect("memory store cannot fail")
                    .user()
                    .is_some()
            })
        });
        g.finish();
    }
}

fn login(c: &mut Criterion) {
    let mut g = c.benchmark_group("login");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("argon2id_hash", |b| {
        b.iter(|| sessiongate::hash_password(black_box(b"correct horse battery staple")))
    });
    g.finish();
}

/// A config of `hosts` hosts of 10 rules each: even ones exact
/// (`h<i>.example.com`), odd ones wildcards (`*.w<i>.example.org`).
fn hosts_config(hosts: usize) -> sessiongate::Config {
    std::env::set_var(
        "HOT_PATH_BENCH_SECRET",
        std::str::from_utf8(SECRET).unwrap(),
    );
    let mut text = String::from(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[session]\nsecrets = [{ env = \"HOT_PATH_BENCH_SECRET\" }]\n[upstream.app]\naddrs = [\"127.0.0.1:2\"]\n",
    );
    for h in 0..hosts {
        let host = if h % 2 == 0 {
            format!("h{h}.example.com")
        } else {
            format!("*.w{h}.example.org")
        };
        for r in 0..10 {
            let access = if r % 2 == 0 {
                "public"
            } else {
                "authenticated"
            };
            text.push_str(&format!(
                "[[route]]\npath = \"/section{r}/page\"\nhosts = [\"{host}\"]\naccess = \"{access}\"\n"
            ));
        }
    }
    sessiongate::Config::parse(&text, std::path::Path::new(".")).expect("bench config is valid")
}

fn routes(c: &mut Criterion) {
    let mut g = c.benchmark_group("routes/decide");
    let get = http::Method::GET;
    for hosts in [2usize, 1_000] {
        let config = hosts_config(hosts);
        let exact = "h0.example.com";
        let wildcard = format!("app.w{}.example.org", hosts - 1);
        for (what, host) in [
            ("exact", exact.to_owned()),
            ("wildcard", wildcard),
            ("unknown", "other.example.net".to_owned()),
        ] {
            g.bench_with_input(BenchmarkId::new(what, hosts), &host, |b, host| {
                b.iter(|| config.route(&get, Some(black_box(host)), black_box("/section9/page/x")))
            });
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    cookie_verify,
    cookie_header,
    store_and_hot_path,
    login,
    routes
);
criterion_main!(benches);
