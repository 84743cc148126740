//! The shared session store: Redis (or Valkey), with moka as a short-lived
//! local cache in front, so several instances behave as one and sessions
//! survive restarts.
//!
//! Layout, under the configured prefix `p`:
//! - `p sess:<hex sha256(id)>`: the session as JSON, written with its expiry,
//!   which is always the smaller of the idle time left and the absolute time
//!   left. No raw session id is ever stored.
//! - `p user:<user>`: a sorted set of that user's session keys, scored by
//!   absolute expiry (revoke-all and listing without a scan).
//!
//! Create, touch and destroy are Lua scripts, so each is atomic. With
//! `resave = false` a session is touched (its idle expiry moved) at most once per
//! [`TOUCH_INTERVAL`]-ish slice of its idle time; with `resave = true` the
//! session manager writes it back in full.
//!
//! Local cache: entries live at most `local_ttl` (1 s by default): that is the
//! hard bound on how long a revocation on another instance can go unnoticed. In
//! the normal case it is near-instant: one dedicated connection per instance
//! runs `CLIENT TRACKING ON BCAST PREFIX p sess:` and receives an invalidation
//! for every change; the local cache is flushed (and bypassed) whenever that
//! connection drops or its heartbeat (every 200 ms) fails. A read that raced an
//! invalidation is re-checked after it is cached.
//!
//! Fail closed: every Redis call has a deadline and the request path's calls
//! (load, create, update, destroy, touch) go through a circuit breaker;
//! failures surface as [`StoreError::Unavailable`], which the proxy turns into
//! 503 on protected routes (never "anonymous", never a cleared cookie). Bulk
//! and admin reads (listing, stats) use a connection of their own with a longer
//! deadline and never count towards the breaker, so a slow scan of a large
//! store cannot make protected routes 503. The first connection is made lazily; until Redis answers, the store
//! reports itself unhealthy (and `/readyz` says not ready). Recovery needs no
//! restart.
//!
//! Limits: Sentinel is not supported (redis-rs does not re-query Sentinel on
//! failover by itself); point `url` at a stable address (a proxy or the
//! primary). A revocation acknowledged by a primary that fails over before
//! replicating it is lost.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, ScanOptions, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::metrics::METRICS;
mod sentinel;
mod tracking;

pub use self::sentinel::SentinelOptions;

use self::tracking::Invalidated;
use crate::session::{
    now_ms, Session, SessionCount, SessionKey, SessionStore, StoreError, StoreStats,
};

/// The shared store.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// `redis://host:port/db`, with the password (if any) filled in from `store.password`.
    /// Not used with `sentinel`.
    pub url: String,
    /// `[store.sentinel]`: the primary is whichever server the sentinels name.
    pub sentinel: Option<SentinelOptions>,
    pub prefix: String,
    pub timeout: Duration,
    pub local_ttl: Duration,
    pub local_capacity: u64,
}

/// Consecutive failures that open the circuit breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker refuses calls before trying again.
const BREAKER_OPEN: Duration = Duration::from_millis(500);
/// How many keys one `SCAN` step asks Redis to look at (its `COUNT`).
const SCAN_COUNT: usize = 1000;
/// The admin/bulk deadline is this many request deadlines…
const ADMIN_DEADLINE_FACTOR: u32 = 10;
/// …and at least this long.
const ADMIN_DEADLINE_MIN: Duration = Duration::from_secs(2);
/// A session is touched in Redis at most this often (and at least every tenth
/// of its idle time), so `resave = false` does not mean a write per request.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(5);

/// The session as stored: roles and data are strings inside the JSON so the Lua
/// scripts can decode and re-encode it without changing its shape.
#[derive(Serialize, Deserialize)]
struct Record {
    user: Option<String>,
    roles: String,
    data: String,
    created_at: u64,
    absolute_expires_at: u64,
    last_seen: u64,
    idle_ms: u64,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

impl Record {
    fn of(s: &Session) -> Record {
        Record {
            user: s.user().map(str::to_owned),
            roles: s.roles_header().to_owned(),
            data: s.data_header().unwrap_or("{}").to_owned(),
            created_at: s.created_at,
            absolute_expires_at: s.absolute_expires_at,
            last_seen: s.last_seen_at(),
            idle_ms: s.idle().as_millis() as u64,
            client_ip: s.client_ip.map(|i| i.to_string()),
            user_agent: s.user_agent().map(str::to_owned),
        }
    }

    fn into_session(self, key: SessionKey) -> Option<Session> {
        let roles = self
            .roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect();
        let data = match serde_json::from_str(&self.data).ok()? {
            serde_json::Value::Object(m) => m,
            // cjson may turn an empty object into an empty array.
            serde_json::Value::Array(a) if a.is_empty() => serde_json::Map::new(),
            _ => return None,
        };
        let s = Session::new(
            key,
            self.user,
            roles,
            data,
            self.created_at,
            self.absolute_expires_at,
            Duration::from_millis(self.idle_ms),
        )
        .with_client(
            self.client_ip.and_then(|i| i.parse().ok()),
            self.user_agent.as_deref(),
        );
        s.mark_seen(self.last_seen);
        Some(s)
    }
}

/// A locally cached session and when it was last touched in Redis.
struct Local {
    session: Arc<Session>,
    touched_at: AtomicU64,
}

/// Counts consecutive failures; while open, calls fail at once.
#[derive(Default)]
struct Breaker {
    failures: AtomicU32,
    open_until: AtomicU64,
}

impl Breaker {
    fn allow(&self) -> bool {
        now_ms() >= self.open_until.load(Ordering::Relaxed)
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn failure(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= BREAKER_THRESHOLD {
            self.open_until.store(
                now_ms() + BREAKER_OPEN.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    fn is_open(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= BREAKER_THRESHOLD
    }
}

/// The Redis store.
pub struct RedisStore {
    config: RedisOptions,
    /// Most sessions one user holds; a login past it ends the oldest.
    max_per_user: usize,
    /// Sessions this instance ended for `max_per_user`.
    displaced: AtomicU64,
    /// The primary and the connections to it: replaced whole when the
    /// sentinels name another primary.
    conns: ArcSwap<Conns>,
    /// `[store.sentinel]`, when the primary is found through sentinels.
    sentinel: Option<sentinel::Link>,
    /// Ends the tracking connection (it must follow a new primary).
    retrack: tokio::sync::Notify,
    /// Held while one call asks the sentinels and installs their answer.
    following: tokio::sync::Mutex<()>,
    local: moka::sync::Cache<SessionKey, Arc<Local>>,
    /// Bumped on every invalidation and flush; a read re-checks it after caching.
    generation: AtomicU64,
    /// The invalidation connection is up and its heartbeat answers.
    tracking: AtomicBool,
    breaker: Breaker,
    create_script: Script,
    touch_script: Script,
    load_script: Script,
    destroy_script: Script,
    count_script: Script,
}

/// One primary's client and the two connections to it.
struct Conns {
    /// `None` until the sentinels have named a primary.
    client: Option<redis::Client>,
    /// The request path's connection (deadline `config.timeout`).
    conn: OnceCell<ConnectionManager>,
    /// Listing and stats: a connection of their own, so bulk replies neither
    /// queue ahead of request-path commands nor hit their response timeout.
    admin: OnceCell<ConnectionManager>,
}

impl Conns {
    fn new(client: Option<redis::Client>) -> Conns {
        Conns {
            client,
            conn: OnceCell::new(),
            admin: OnceCell::new(),
        }
    }
}

/// Store a session and, for a user's session, index it under the user and end
/// that user's oldest sessions past ARGV[6] (`max_per_user`). The index is
/// scored by absolute expiry, which is creation + `absolute_timeout`, so the
/// lowest scores are the oldest sessions; the new one is never among those
/// ended. Returns how many were ended.
const CREATE: &str = include_str!("scripts/create.lua");

const TOUCH: &str = include_str!("scripts/touch.lua");

/// Read a session and, when its idle expiry was last moved more than ARGV[2]
/// ms (or a tenth of its idle time) ago, move it: loading is using.
const LOAD: &str = include_str!("scripts/load.lua");

const DESTROY: &str = include_str!("scripts/destroy.lua");

const COUNT: &str = include_str!("scripts/count.lua");

/// Session keys counted per `COUNT` script call.
const COUNT_BATCH: usize = 500;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// A store for `config`; nothing is connected until first use.
    ///
    /// # Errors
    /// If the URL cannot be parsed.
    pub fn new(config: RedisOptions, max_per_user: usize) -> Result<RedisStore, redis::RedisError> {
        let (client, sentinel) = match &config.sentinel {
            Some(s) => (None, Some(sentinel::Link::new(s.clone())?)),
            None => (Some(redis::Client::open(config.url.as_str())?), None),
        };
        let local = moka::sync::Cache::builder()
            .max_capacity(config.local_capacity)
            .time_to_live(config.local_ttl)
            .build();
        Ok(RedisStore {
            conns: ArcSwap::from_pointee(Conns::new(client)),
            sentinel,
            retrack: tokio::sync::Notify::new(),
            following: tokio::sync::Mutex::new(()),
            local,
            generation: AtomicU64::new(0),
            tracking: AtomicBool::new(false),
            breaker: Breaker::default(),
            create_script: Script::new(CREATE),
            touch_script: Script::new(TOUCH),
            load_script: Script::new(LOAD),
            destroy_script: Script::new(DESTROY),
            count_script: Script::new(COUNT),
            config,
            max_per_user,
            displaced: AtomicU64::new(0),
        })
    }

    fn sess_key(&self, key: &SessionKey) -> String {
        format!("{}sess:{}", self.config.prefix, key.to_hex())
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}user:{}", self.config.prefix, user)
    }

    /// Run one request-path Redis operation with the deadline and the breaker.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            self.follow().await;
            return Err(unavailable("circuit breaker open"));
        }
        let conns = self.conns().await;
        let result = Self::within(&conns, false, self.config.timeout, op).await;
        match &result {
            Ok(_) => self.breaker.success(),
            Err(_) => {
                self.breaker.failure();
                self.follow().await;
            }
        }
        result
    }

    /// The deadline of admin and bulk operations: [`ADMIN_DEADLINE_FACTOR`]
    /// request deadlines, at least [`ADMIN_DEADLINE_MIN`].
    fn admin_deadline(&self) -> Duration {
        (self.config.timeout * ADMIN_DEADLINE_FACTOR).max(ADMIN_DEADLINE_MIN)
    }

    /// Run one admin or bulk Redis operation (listing, stats) on the admin
    /// connection with the admin deadline. It fails fast while the breaker is
    /// open (Redis is known to be failing) but never counts towards it: a slow
    /// scan of a large store must not make the request path fail closed.
    async fn call_admin<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(unavailable("circuit breaker open"));
        }
        let conns = self.conns().await;
        Self::within(&conns, true, self.admin_deadline(), op).await
    }

    /// The current primary's connections; with Sentinel, asked for first
    /// when no primary is known yet.
    async fn conns(&self) -> Arc<Conns> {
        let conns = self.conns.load_full();
        if conns.client.is_none() {
            // No primary yet: wait for whoever is asking, rather than fail
            // because another call (the tracking task, at start) asks first.
            self.follow_with(true).await;
            return self.conns.load_full();
        }
        conns
    }

    async fn follow(&self) {
        self.follow_with(false).await;
    }

    /// With Sentinel: ask which server is the primary (at most every
    /// [`sentinel::ASK_EVERY`]); when another one is, connect to it from now
    /// on, flush the local cache and move the tracking connection there.
    async fn follow_with(&self, wait: bool) {
        let Some(link) = &self.sentinel else {
            return;
        };
        // One asks and installs the answer at a time; with `wait`, the others
        // wait and use that answer, without them they go on (and fail).
        let _asking = if wait {
            let guard = self.following.lock().await;
            if self.conns.load().client.is_some() {
                return;
            }
            guard
        } else {
            match self.following.try_lock() {
                Ok(g) => g,
                Err(_) => return,
            }
        };
        let Some(found) = link
            .primary(self.config.timeout.max(Duration::from_millis(500)))
            .await
        else {
            return;
        };
        let client = match found {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the sentinels name no reachable primary");
                return;
            }
        };
        let current = self.conns.load();
        let same = current
            .client
            .as_ref()
            .is_some_and(|c| c.get_connection_info().addr() == client.get_connection_info().addr());
        if same {
            return;
        }
        tracing::warn!(primary = %client.get_connection_info().addr(), "Redis primary changed (Sentinel); local cache flushed");
        self.conns.store(Arc::new(Conns::new(Some(client))));
        self.flush_local();
        self.breaker.success();
        self.retrack.notify_waiters();
    }

    /// Run `op` on `conns`' request-path (or admin) connection, connecting it
    /// first if need be, within `deadline`.
    async fn within<T, F, Fut>(
        conns: &Conns,
        admin: bool,
        deadline: Duration,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(client) = &conns.client else {
            return Err(unavailable(
                "no Redis primary known (the sentinels did not name one)",
            ));
        };
        let conn = if admin { &conns.admin } else { &conns.conn };
        let result = tokio::time::timeout(deadline, async {
            let conn = conn
                .get_or_try_init(|| async {
                    let cfg = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(deadline))
                        .set_response_timeout(Some(deadline))
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(client.clone(), cfg).await
                })
                .await?
                .clone();
            op(conn).await
        })
        .await;
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("deadline exceeded")),
        }
    }

    /// Every session key in Redis (`SCAN` over `<prefix>sess:*`, on the admin
    /// path), each passed to `each`; names that are not session keys are
    /// skipped. A failing `SCAN` step fails the whole scan.
    async fn scan_keys(&self, mut each: impl FnMut(SessionKey)) -> Result<(), StoreError> {
        let pattern = format!("{}sess:*", self.config.prefix);
        let prefix_len = pattern.len() - 1;
        self.call_admin(|mut c| async move {
            let opts = ScanOptions::default()
                .with_pattern(pattern)
                .with_count(SCAN_COUNT);
            let mut it = c.scan_options::<String>(opts).await?;
            while let Some(name) = it.next_item().await {
                if let Some(key) = name?.get(prefix_len..).and_then(SessionKey::from_hex) {
                    each(key);
                }
            }
            Ok(())
        })
        .await
    }

    /// Whether Redis answers and the local cache can be trusted.
    pub fn healthy(&self) -> bool {
        self.tracking.load(Ordering::Relaxed) && !self.breaker.is_open()
    }

    fn flush_local(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.local.invalidate_all();
    }

    fn cache(&self, s: &Arc<Session>, generation: u64) {
        if !self.tracking.load(Ordering::Relaxed) {
            return;
        }
        let entry = Arc::new(Local {
            session: s.clone(),
            touched_at: AtomicU64::new(now_ms()),
        });
        self.local.insert(s.key, entry);
        // An invalidation may have overtaken this read: then the cached copy is
        // not to be trusted.
        if self.generation.load(Ordering::SeqCst) != generation {
            self.local.invalidate(&s.key);
        }
    }

    async fn fetch(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let k = self.sess_key(key);
        let (now, every) = (now_ms(), TOUCH_INTERVAL.as_millis() as u64);
        let script = &self.load_script;
        // One round trip: read, and slide the idle expiry if it was last moved
        // more than a touch interval ago (a write invalidates every instance's
        // cached copy, so it must not happen on every read).
        let raw: Option<String> = self
            .call(
                |mut c| async move { script.key(k).arg(now).arg(every).invoke_async(&mut c).await },
            )
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let Some(s) = serde_json::from_str::<Record>(&raw)
            .ok()
            .and_then(|r| r.into_session(*key))
        else {
            tracing::warn!("unreadable session record in Redis ignored");
            return Ok(None);
        };
        let s = Arc::new(s);
        self.cache(&s, generation);
        Ok(Some(s))
    }

    async fn touch_remote(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let k = self.sess_key(key);
        let now = now_ms();
        let script = &self.touch_script;
        let n: i64 = self
            .call(|mut c| async move { script.key(k).arg(now).invoke_async(&mut c).await })
            .await?;
        Ok(n == 1)
    }

    fn ttl_ms(s: &Session, now: u64) -> u64 {
        s.idle()
            .as_millis()
            .min(u128::from(s.absolute_expires_at.saturating_sub(now))) as u64
    }

    async fn write(&self, s: &Session, only_if_exists: bool) -> Result<bool, StoreError> {
        let now = now_ms();
        let ttl = Self::ttl_ms(s, now);
        if ttl == 0 {
            return Ok(false);
        }
        let json = serde_json::to_string(&Record::of(s)).map_err(unavailable)?;
        let k = self.sess_key(&s.key);
        if only_if_exists {
            let ok: Option<String> = self
                .call(|mut c| async move {
                    redis::cmd("SET")
                        .arg(k)
                        .arg(json)
                        .arg("PX")
                        .arg(ttl)
                        .arg("XX")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            return Ok(ok.is_some());
        }
        let mut inv = self.create_script.prepare_invoke();
        inv.key(k);
        if let Some(user) = s.user() {
            inv.key(self.user_key(user));
        }
        inv.arg(json)
            .arg(ttl)
            .arg(s.absolute_expires_at)
            .arg(s.key.to_hex())
            .arg(now)
            .arg(self.max_per_user)
            .arg(format!("{}sess:", self.config.prefix));
        let ended: u64 = self
            .call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        self.displaced.fetch_add(ended, Ordering::Relaxed);
        Ok(true)
    }

    async fn mget(&self, keys: Vec<SessionKey>) -> Result<Vec<Arc<Session>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|k| self.sess_key(k)).collect();
        let values: Vec<Option<String>> = self
            .call_admin(|mut c| async move { c.mget(names).await })
            .await?;
        let now = now_ms();
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| serde_json::from_str::<Record>(&v?).ok()?.into_session(k))
            .filter(|s| s.is_live(now))
            .map(Arc::new)
            .collect())
    }

    /// The invalidation listener: keeps one tracking connection, flushes the
    /// local cache on every invalidation, drop or missed heartbeat. Runs until
    /// `stop` resolves.
    pub async fn watch(&self, mut stop: impl Future<Output = ()> + Unpin) {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                // The primary changed: track there (the loop connects again at once).
                _ = self.retrack.notified() => {
                    self.tracking.store(false, Ordering::Relaxed);
                    self.flush_local();
                    backoff = Duration::from_millis(100);
                    continue;
                }
                result = self.track() => {
                    self.tracking.store(false, Ordering::Relaxed);
                    self.flush_local();
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "Redis invalidation connection lost; local cache flushed");
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// One tracking connection's life: see [`tracking::run`]. Every
    /// invalidation bumps the generation, so a read that raced it is re-checked.
    async fn track(&self) -> std::io::Result<()> {
        let prefix = format!("{}sess:", self.config.prefix);
        let conns = self.conns().await;
        let Some(client) = &conns.client else {
            return Err(std::io::Error::other("no Redis primary known"));
        };
        let result = tracking::run(
            client.get_connection_info(),
            &prefix,
            self.config.timeout,
            || {
                // From here on, the local cache is kept honest by this connection.
                self.flush_local();
                self.tracking.store(true, Ordering::Relaxed);
            },
            |invalidated| match invalidated {
                Invalidated::Keys(keys) => {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    for key in keys {
                        match key {
                            Some(key) => self.local.invalidate(&key),
                            None => self.flush_local(),
                        }
                    }
                }
                Invalidated::All => self.flush_local(),
            },
        )
        .await;
        if result.is_err() {
            // The primary may be gone: the sentinels may name another.
            self.follow().await;
        }
        result
    }
}

impl SessionStore for RedisStore {
    async fn create(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        self.write(&session, false).await?;
        Ok(Arc::new(session))
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        let key = *key;
        let now = now_ms();
        if let Some(local) = self.local.get(&key) {
            if self.tracking.load(Ordering::Relaxed) && local.session.is_live(now) {
                local.session.mark_seen(now);
                // resave = false: move the idle expiry in Redis now and then, not per request.
                let every = (local.session.idle() / 10).min(TOUCH_INTERVAL).as_millis() as u64;
                if now.saturating_sub(local.touched_at.load(Ordering::Relaxed)) >= every {
                    local.touched_at.store(now, Ordering::Relaxed);
                    if !self.touch_remote(&key).await? {
                        self.local.invalidate(&key);
                        return Ok(None);
                    }
                }
                METRICS.store_local_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(local.session.clone()));
            }
            self.local.invalidate(&key);
        }
        METRICS.store_local_misses.fetch_add(1, Ordering::Relaxed);
        let Some(s) = self.fetch(&key).await? else {
            return Ok(None);
        };
        if !s.is_live(now) {
            return Ok(None);
        }
        s.mark_seen(now);
        Ok(Some(s))
    }

    async fn update(&self, session: Session) -> Result<Option<Arc<Session>>, StoreError> {
        session.mark_seen(now_ms());
        if !self.write(&session, true).await? {
            return Ok(None);
        }
        let key = session.key;
        let s = Arc::new(session);
        self.local.invalidate(&key);
        Ok(Some(s))
    }

    async fn destroy(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let key = *key;
        self.local.invalidate(&key);
        let k = self.sess_key(&key);
        let prefix = self.config.prefix.clone();
        let script = &self.destroy_script;
        let n: i64 = self
            .call(|mut c| async move {
                script
                    .key(k)
                    .arg(prefix)
                    .arg(key.to_hex())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        self.local.invalidate(&key);
        Ok(n == 1)
    }

    async fn list(&self) -> Result<Vec<Arc<Session>>, StoreError> {
        let mut keys = Vec::new();
        self.scan_keys(|k| keys.push(k)).await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            out.extend(self.mget(chunk.to_vec()).await?);
        }
        Ok(out)
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Arc<Session>>, StoreError> {
        let index = self.user_key(user);
        let now = now_ms();
        let members: Vec<String> = self
            .call_admin(|mut c| async move { c.zrangebyscore(index, now, "+inf").await })
            .await?;
        let keys = members
            .iter()
            .filter_map(|m| SessionKey::from_hex(m))
            .collect();
        self.mget(keys).await
    }

    async fn peek(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.mget(vec![*key]).await?.pop())
    }

    /// `SCAN` for the keys, then a script per batch that counts them where
    /// they are: no record crosses the network. Redis expires sessions by
    /// itself, so every key found is a live session.
    async fn count(&self) -> Result<SessionCount, StoreError> {
        let mut keys = Vec::new();
        self.scan_keys(|k| keys.push(k)).await?;
        let mut count = SessionCount::default();
        // Names only, for the distinct count: no record crosses the network.
        let mut users = std::collections::HashSet::new();
        for batch in keys.chunks(COUNT_BATCH) {
            let mut inv = self.count_script.prepare_invoke();
            for k in batch {
                inv.key(self.sess_key(k));
            }
            let (live, anonymous, names): (u64, u64, Vec<String>) = self
                .call_admin(|mut c| async move { inv.invoke_async(&mut c).await })
                .await?;
            count.live += live;
            count.anonymous += anonymous;
            users.extend(names);
        }
        count.users = users.len() as u64;
        Ok(count)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            displaced: self.displaced.load(Ordering::Relaxed),
            // Redis expires and evicts by itself (its own maxmemory policy).
            ..StoreStats::default()
        })
    }

    fn healthy(&self) -> bool {
        RedisStore::healthy(self)
    }
}

/// Runs [`RedisStore::watch`] as a pingora background service.
pub struct Watcher(pub Arc<RedisStore>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Watcher {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let stop = Box::pin(async move {
            let _ = shutdown.changed().await;
        });
        self.0.watch(stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_survives_cjson_reencoding() {
        let id = crate::session::signing::SessionId::generate();
        let key = SessionKey::of(&id);
        let mut data = serde_json::Map::new();
        data.insert("cart".into(), serde_json::json!([1, 2]));
        let mut s = Session::new(
            key,
            Some("alice".into()),
            vec!["a".into(), "b".into()],
            data,
            1_000,
            9_000,
            Duration::from_secs(60),
        );
        s.client_ip = Some("10.0.0.1".parse().unwrap());
        s.mark_seen(2_000);
        let json = serde_json::to_string(&Record::of(&s)).unwrap();
        let back = serde_json::from_str::<Record>(&json)
            .unwrap()
            .into_session(key)
            .unwrap();
        assert_eq!(back.user(), Some("alice"));
        assert_eq!(back.roles().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(back.data_header(), Some(r#"{"cart":[1,2]}"#));
        assert_eq!(back.last_seen_at(), 2_000);
        assert_eq!(back.client_ip, s.client_ip);
        // Lua's cjson writes "/" as "\/" and an empty object as "{}".
        let lua = json.replace('/', "\\/");
        assert!(serde_json::from_str::<Record>(&lua)
            .unwrap()
            .into_session(key)
            .is_some());
        // The record holds no identifier at all: neither the raw id nor the
        // key (which is only ever the Redis key's name).
        assert!(
            !json.contains(&hex::encode(id.as_bytes())),
            "raw session id in the record: {json}"
        );
        assert!(
            !json.contains(&key.to_hex()),
            "session key in the record: {json}"
        );
    }

    fn store_with_timeout(url: String, timeout: Duration) -> RedisStore {
        RedisStore::new(
            RedisOptions {
                sentinel: None,
                url,
                prefix: "t:".into(),
                timeout,
                local_ttl: Duration::from_secs(1),
                local_capacity: 100,
            },
            10,
        )
        .unwrap()
    }

    #[test]
    fn the_admin_deadline_is_ten_request_deadlines_and_at_least_two_seconds() {
        let url = "redis://127.0.0.1:1/".to_owned();
        let d = |ms| store_with_timeout(url.clone(), Duration::from_millis(ms)).admin_deadline();
        assert_eq!(d(250), Duration::from_millis(2_500));
        assert_eq!(d(50), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn failing_admin_scans_do_not_open_the_breaker_request_path_failures_do() {
        // A port nobody listens on: every call fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = store_with_timeout(
            format!("redis://127.0.0.1:{port}/"),
            Duration::from_millis(250),
        );
        for _ in 0..BREAKER_THRESHOLD {
            assert!(store.list().await.is_err());
            assert!(store.count().await.is_err());
            assert!(store
                .peek(&SessionKey::of(
                    &crate::session::signing::SessionId::generate()
                ))
                .await
                .is_err());
            assert!(store.list_user("alice").await.is_err());
        }
        assert!(
            !store.breaker.is_open(),
            "admin failures opened the breaker"
        );
        let key = SessionKey::of(&crate::session::signing::SessionId::generate());
        for _ in 0..BREAKER_THRESHOLD {
            assert!(store.load(&key).await.is_err());
        }
        assert!(store.breaker.is_open());
        // While open, admin calls fail fast without waiting for Redis.
        match store.count().await {
            Err(StoreError::Unavailable(e)) => assert!(e.contains("breaker"), "{e}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_and_closes_on_success() {
        let b = Breaker::default();
        for _ in 0..BREAKER_THRESHOLD {
            assert!(b.allow());
            b.failure();
        }
        assert!(!b.allow() && b.is_open());
        b.success();
        assert!(!b.is_open());
    }
}
