//! The shared session store: Redis (or Valkey), with moka as a short-lived
//! local cache in front, so several instances behave as one and sessions
//! survive restarts. Redis is one server (`store.url`), a primary found through
//! Redis Sentinel (`sentinel.rs`), or a Redis Cluster (`cluster.rs`).
//!
//! Layout, under the configured prefix `p`:
//! - `p sess:<hex sha256(id)>`: the session as JSON (`record.rs`), written
//!   with its expiry, which is always the smaller of the idle time left and
//!   the absolute time left. No raw session id is ever stored.
//! - `p user:<user>`: a sorted set of that user's session keys, scored by
//!   absolute expiry (revoke-all and listing without a scan).
//!
//! Every command and script names one key, so the same calls work on a
//! cluster, where a script may only touch keys of one hash slot. Load and
//! touch are scripts (atomic read-and-slide). A login is ordered steps: the
//! user's index gains the session as pending before its record is written,
//! the entry is confirmed after, only confirmed entries are ended for
//! `max_per_user`, and an index entry is removed only after its record is
//! gone. So whatever two logins of one user do at once, and whatever step an
//! instance dies at, no live session is missing from its user's index
//! (revoke-all never misses one; at worst a dead entry waits for its expiry).
//! With `resave = false` a session is touched (its idle expiry moved) at most
//! once per [`TOUCH_INTERVAL`]-ish slice of its idle time; with `resave = true`
//! the session manager writes it back in full.
//!
//! Local cache: entries live at most `local_ttl` (1 s by default): that is the
//! hard bound on how long a revocation on another instance can go unnoticed. In
//! the normal case it is near-instant: one dedicated connection per instance
//! (on a cluster, per primary) runs `CLIENT TRACKING ON BCAST PREFIX p sess:`
//! (`tracking.rs`, `watch.rs`) and receives an invalidation for every change;
//! the local cache is flushed (and bypassed) whenever that connection drops or
//! its heartbeat (every 200 ms) fails. A read that raced an invalidation is
//! re-checked after it is cached.
//!
//! Fail closed: every Redis call has a deadline and the request path's calls
//! (load, create, update, destroy, touch) go through a circuit breaker
//! (`breaker.rs`); failures surface as [`StoreError::Unavailable`], which the
//! proxy turns into 503 on protected routes (never "anonymous", never a
//! cleared cookie). Bulk and admin reads (listing, stats) use a connection of
//! their own with a longer deadline and never count towards the breaker, so a
//! slow scan of a large store cannot make protected routes 503. The first
//! connection is made lazily; until Redis answers, the store reports itself
//! unhealthy (and `/readyz` says not ready). Recovery needs no restart.
//!
//! Limits: a write acknowledged by a primary that fails over before
//! replicating it is lost (README, "What a failover can lose").

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::{AsyncCommands, ScanOptions, Script};

use crate::metrics::METRICS;
mod breaker;
mod cluster;
mod conn;
mod record;
mod sentinel;
mod tracking;
mod watch;

pub use self::cluster::ClusterOptions;
pub use self::sentinel::SentinelOptions;
pub use self::watch::Watcher;

use self::breaker::Breaker;
use self::conn::{unavailable, Conn, Conns, Target};
use self::record::Record;
use crate::session::{
    now_ms, Session, SessionCount, SessionKey, SessionStore, StoreError, StoreStats,
};

/// The shared store.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    pub servers: Servers,
    pub prefix: String,
    pub timeout: Duration,
    pub local_ttl: Duration,
    pub local_capacity: u64,
}

/// Which Redis servers hold the sessions. Its `Debug` leaves passwords out.
#[derive(Clone, PartialEq)]
pub enum Servers {
    /// One server: `redis://host:port/db`, with the password (if any) filled
    /// in from `store.password`.
    One(String),
    /// `[store.sentinel]`: whichever server the sentinels name as primary.
    Sentinel(SentinelOptions),
    /// `[store.cluster]`: a Redis Cluster.
    Cluster(ClusterOptions),
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Servers::One(url) => {
                // redis://:<password>@host:port/db: only what follows the `@`.
                let shown = match url.split_once('@') {
                    Some((_, rest)) => format!("redis://[redacted]@{rest}"),
                    None => url.clone(),
                };
                f.debug_tuple("One").field(&shown).finish()
            }
            Servers::Sentinel(s) => f.debug_tuple("Sentinel").field(s).finish(),
            Servers::Cluster(c) => f.debug_tuple("Cluster").field(c).finish(),
        }
    }
}

/// A password as `Debug` shows it: whether there is one, never what it is.
fn redacted(password: &Option<String>) -> Option<&'static str> {
    password.as_ref().map(|_| "[redacted]")
}

/// How many keys one `SCAN` step asks Redis to look at (its `COUNT`).
const SCAN_COUNT: usize = 1000;
/// The admin/bulk deadline is this many request deadlines…
const ADMIN_DEADLINE_FACTOR: u32 = 10;
/// …and at least this long.
const ADMIN_DEADLINE_MIN: Duration = Duration::from_secs(2);
/// A session is touched in Redis at most this often (and at least every tenth
/// of its idle time), so `resave = false` does not mean a write per request.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(5);

/// A locally cached session and when it was last touched in Redis.
struct Local {
    session: Arc<Session>,
    touched_at: AtomicU64,
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
    /// The invalidation connection (on a cluster, one per primary) is up and
    /// its heartbeat answers: the local cache is used only while it is.
    tracking: AtomicBool,
    breaker: Breaker,
    index_script: Script,
    confirm_script: Script,
    take_script: Script,
    touch_script: Script,
    load_script: Script,
    count_script: Script,
}

/// Add a session to its user's index and name the user's oldest sessions
/// past `max_per_user`, for the caller to end. The index is scored by
/// absolute expiry, which is creation + `absolute_timeout`, so the lowest
/// scores are the oldest sessions; the new one is never among those named.
const INDEX: &str = include_str!("scripts/index.lua");

/// Turn a new session's pending index entry into a confirmed one.
const CONFIRM: &str = include_str!("scripts/confirm.lua");

/// Remove a record and return it (a `GETDEL` that runs on Redis 6.0).
const TAKE: &str = include_str!("scripts/take.lua");

const TOUCH: &str = include_str!("scripts/touch.lua");

/// Read a session and, when its idle expiry was last moved more than ARGV[2]
/// ms (or a tenth of its idle time) ago, move it: loading is using.
const LOAD: &str = include_str!("scripts/load.lua");

const COUNT: &str = include_str!("scripts/count.lua");

/// Session keys counted per `COUNT` script call (or `MGET` on a cluster).
const COUNT_BATCH: usize = 500;

/// The deadline of admin and bulk operations: [`ADMIN_DEADLINE_FACTOR`]
/// request deadlines, at least [`ADMIN_DEADLINE_MIN`].
fn admin_deadline(timeout: Duration) -> Duration {
    (timeout * ADMIN_DEADLINE_FACTOR).max(ADMIN_DEADLINE_MIN)
}

impl RedisStore {
    /// A store for `config`; nothing is connected until first use.
    ///
    /// # Errors
    /// If an address cannot be parsed.
    pub fn new(config: RedisOptions, max_per_user: usize) -> Result<RedisStore, redis::RedisError> {
        let admin_deadline = admin_deadline(config.timeout);
        let (target, sentinel) = match &config.servers {
            Servers::One(url) => (Target::Server(redis::Client::open(url.as_str())?), None),
            Servers::Sentinel(s) => (Target::Unknown, Some(sentinel::Link::new(s.clone())?)),
            Servers::Cluster(c) => (
                Target::Cluster(Box::new(cluster::client(
                    c,
                    config.timeout,
                    admin_deadline,
                )?)),
                None,
            ),
        };
        let local = moka::sync::Cache::builder()
            .max_capacity(config.local_capacity)
            .time_to_live(config.local_ttl)
            .build();
        Ok(RedisStore {
            conns: ArcSwap::from_pointee(Conns::new(target)),
            sentinel,
            retrack: tokio::sync::Notify::new(),
            following: tokio::sync::Mutex::new(()),
            local,
            generation: AtomicU64::new(0),
            tracking: AtomicBool::new(false),
            breaker: Breaker::default(),
            index_script: Script::new(INDEX),
            confirm_script: Script::new(CONFIRM),
            take_script: Script::new(TAKE),
            touch_script: Script::new(TOUCH),
            load_script: Script::new(LOAD),
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
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            self.follow().await;
            return Err(unavailable("circuit breaker open"));
        }
        let conns = self.conns().await;
        let result = conns.within(false, self.config.timeout, op).await;
        match &result {
            Ok(_) => self.breaker.success(),
            Err(_) => {
                self.breaker.failure();
                self.follow().await;
            }
        }
        result
    }

    /// Run one admin or bulk Redis operation (listing, stats) on the admin
    /// connection with the admin deadline. It fails fast while the breaker is
    /// open (Redis is known to be failing) but never counts towards it: a slow
    /// scan of a large store must not make the request path fail closed.
    async fn call_admin<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(unavailable("circuit breaker open"));
        }
        let conns = self.conns().await;
        conns
            .within(true, admin_deadline(self.config.timeout), op)
            .await
    }

    /// The current primary's connections; with Sentinel, asked for first
    /// when no primary is known yet.
    async fn conns(&self) -> Arc<Conns> {
        let conns = self.conns.load_full();
        if matches!(conns.target, Target::Unknown) {
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
            if !matches!(self.conns.load().target, Target::Unknown) {
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
        let same = match &self.conns.load().target {
            Target::Server(c) => {
                c.get_connection_info().addr() == client.get_connection_info().addr()
            }
            _ => false,
        };
        if same {
            return;
        }
        tracing::warn!(primary = %client.get_connection_info().addr(), "Redis primary changed (Sentinel); local cache flushed");
        self.conns
            .store(Arc::new(Conns::new(Target::Server(client))));
        self.flush_local();
        self.breaker.success();
        self.retrack.notify_waiters();
    }

    /// Every session key in Redis (`SCAN` over `<prefix>sess:*`, on the admin
    /// path; on a cluster, of every primary), each passed to `each`; names
    /// that are not session keys are skipped. A failing `SCAN` step fails the
    /// whole scan.
    async fn scan_keys(&self, mut each: impl FnMut(SessionKey)) -> Result<(), StoreError> {
        let pattern = format!("{}sess:*", self.config.prefix);
        let prefix_len = pattern.len() - 1;
        let mut found = |name: String| {
            if let Some(key) = name.get(prefix_len..).and_then(SessionKey::from_hex) {
                each(key);
            }
        };
        self.call_admin(|c| async move {
            match c {
                Conn::Server(mut c) => {
                    let opts = ScanOptions::default()
                        .with_pattern(pattern)
                        .with_count(SCAN_COUNT);
                    let mut it = c.scan_options::<String>(opts).await?;
                    while let Some(name) = it.next_item().await {
                        found(name?);
                    }
                    Ok(())
                }
                Conn::Cluster(mut c) => cluster::scan(&mut c, &pattern, SCAN_COUNT, found).await,
            }
        })
        .await
    }

    /// Whether Redis answers and the local cache can be trusted (every
    /// invalidation connection is up).
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
        if Self::ttl_ms(s, now) == 0 {
            return Ok(false);
        }
        if only_if_exists {
            let ok: Option<String> = self.put(s, now, Some("XX")).await?;
            return Ok(ok.is_some());
        }
        let Some(user) = s.user() else {
            self.put::<()>(s, now, None).await?;
            return Ok(true);
        };
        // The index first (pending), the record, then the entry confirmed:
        // see the module doc and scripts/index.lua.
        let ended = self.index(user, s, now).await?;
        if let Err(e) = self.put::<()>(s, now, None).await {
            // Without a record the pending entry would only count against
            // max_per_user until it expires.
            let (index, pending) = (self.user_key(user), format!("~{}", s.key.to_hex()));
            let _ = self
                .call(|mut c| async move { c.zrem::<_, _, ()>(index, pending).await })
                .await;
            return Err(e);
        }
        self.confirm(user, s).await?;
        if !ended.is_empty() {
            self.end_displaced(user, ended).await?;
        }
        Ok(true)
    }

    /// Write `s`'s record with its expiry (`SET ... PX`, and `condition`).
    async fn put<T: redis::FromRedisValue>(
        &self,
        s: &Session,
        now: u64,
        condition: Option<&str>,
    ) -> Result<T, StoreError> {
        let json = serde_json::to_string(&Record::of(s)).map_err(unavailable)?;
        let mut set = redis::cmd("SET");
        set.arg(self.sess_key(&s.key))
            .arg(json)
            .arg("PX")
            .arg(Self::ttl_ms(s, now));
        if let Some(c) = condition {
            set.arg(c);
        }
        self.call(|mut c| async move { set.query_async(&mut c).await })
            .await
    }

    /// `s`'s record is written: its pending index entry becomes confirmed.
    async fn confirm(&self, user: &str, s: &Session) -> Result<(), StoreError> {
        let mut confirm = self.confirm_script.prepare_invoke();
        confirm.key(self.user_key(user)).arg(s.key.to_hex());
        self.call(|mut c| async move { confirm.invoke_async::<()>(&mut c).await })
            .await
    }

    /// Add `s` to its user's index, pending; the keys of the user's
    /// confirmed sessions past `max_per_user` (oldest first).
    async fn index(&self, user: &str, s: &Session, now: u64) -> Result<Vec<String>, StoreError> {
        let mut inv = self.index_script.prepare_invoke();
        inv.key(self.user_key(user))
            .arg(s.absolute_expires_at)
            .arg(s.key.to_hex())
            .arg(now)
            .arg(self.max_per_user);
        let ended: Vec<String> = self
            .call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        // The index holds only what this store wrote; still, never build a
        // key name from anything but a session key.
        Ok(ended
            .into_iter()
            .filter(|m| SessionKey::from_hex(m).is_some())
            .collect())
    }

    /// End sessions displaced by `max_per_user`: their records, then their
    /// entries in `user`'s index.
    async fn end_displaced(&self, user: &str, ended: Vec<String>) -> Result<(), StoreError> {
        let names: Vec<String> = ended
            .iter()
            .map(|m| format!("{}sess:{m}", self.config.prefix))
            .collect();
        // On a cluster, redis-rs splits one DEL per slot.
        let gone: u64 = self.call(|mut c| async move { c.del(names).await }).await?;
        let index = self.user_key(user);
        self.call(|mut c| async move { c.zrem::<_, _, ()>(index, ended).await })
            .await?;
        self.displaced.fetch_add(gone, Ordering::Relaxed);
        Ok(())
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

    /// The record goes first, its user's index entry after (see the module
    /// doc); `GETDEL` needs Redis 6.2 or later.
    async fn destroy(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let key = *key;
        self.local.invalidate(&key);
        let k = self.sess_key(&key);
        let take = &self.take_script;
        let raw: Option<String> = self
            .call(|mut c| async move { take.key(k).invoke_async(&mut c).await })
            .await?;
        self.local.invalidate(&key);
        let Some(raw) = raw else { return Ok(false) };
        if let Some(user) = serde_json::from_str::<Record>(&raw)
            .ok()
            .and_then(|r| r.user)
        {
            let index = self.user_key(&user);
            // Confirmed, or still pending if its login has not finished.
            let entries = [key.to_hex(), format!("~{}", key.to_hex())];
            let unindexed = self
                .call(|mut c| async move { c.zrem::<_, _, ()>(index, &entries).await })
                .await;
            // The session is gone either way; its index entry points at nothing.
            if let Err(e) = unindexed {
                tracing::warn!(error = %e, "a destroyed session's index entry stays until it expires");
            }
        }
        Ok(true)
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
        // A pending entry ("~<key>") may already have its record: it counts.
        let keys = members
            .iter()
            .filter_map(|m| SessionKey::from_hex(m.strip_prefix('~').unwrap_or(m)))
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
        let mut users = std::collections::HashSet::new();
        if self.conns.load().is_cluster() {
            // A script may touch only one slot: the records come here.
            for batch in keys.chunks(COUNT_BATCH) {
                for s in self.mget(batch.to_vec()).await? {
                    count.live += 1;
                    match s.user() {
                        Some(u) => _ = users.insert(u.to_owned()),
                        None => count.anonymous += 1,
                    }
                }
            }
            count.users = users.len() as u64;
            return Ok(count);
        }
        // Names only, for the distinct count: no record crosses the network.
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

#[cfg(test)]
mod tests {
    use super::breaker::BREAKER_THRESHOLD;
    use super::*;
    fn store_with_timeout(url: String, timeout: Duration) -> RedisStore {
        RedisStore::new(
            RedisOptions {
                servers: Servers::One(url),
                prefix: "t:".into(),
                timeout,
                local_ttl: Duration::from_secs(1),
                local_capacity: 100,
            },
            10,
        )
        .unwrap()
    }

    /// The live sessions in mallory's index.
    async fn indexed(store: &RedisStore) -> Vec<SessionKey> {
        let live = store.list_user("mallory").await.unwrap();
        live.iter().map(|s| s.key).collect()
    }

    /// Regression: with a login split into one-key steps, a login of the
    /// same user that ran whole while another was between indexing and
    /// writing its record ended that not-yet-written session, dropped its
    /// index entry, and left it live outside the index: revoke-all missed it.
    #[tokio::test]
    async fn a_login_in_flight_is_never_dropped_from_the_index_by_another() {
        let server = super::tracking::tests::Server::start();
        let store = RedisStore::new(
            RedisOptions {
                servers: Servers::One(server.url()),
                prefix: "t:".into(),
                timeout: Duration::from_secs(2),
                local_ttl: Duration::from_secs(1),
                local_capacity: 100,
            },
            1,
        )
        .unwrap();
        let login = |at: u64| {
            let key = SessionKey::of(&crate::session::signing::SessionId::generate());
            let idle = Duration::from_secs(600);
            Session::new(
                key,
                Some("mallory".into()),
                vec![],
                serde_json::Map::new(),
                at,
                at + 3_600_000,
                idle,
            )
        };
        let now = now_ms();
        let (a, b) = (login(now), login(now + 1));
        // A's login has indexed A, not yet written it...
        assert!(store.index("mallory", &a, now).await.unwrap().is_empty());
        // ...when B's login runs whole (max_per_user = 1)...
        assert!(store.write(&b, false).await.unwrap());
        // ...and then A's goes on.
        store.put::<()>(&a, now, None).await.unwrap();
        store.confirm("mallory", &a).await.unwrap();
        let now_indexed = indexed(&store).await;
        assert!(
            now_indexed.contains(&a.key),
            "a live session is outside its user's index"
        );
        assert!(now_indexed.contains(&b.key));
        // The next login ends the confirmed ones past max_per_user.
        let c = login(now + 2);
        assert!(store.write(&c, false).await.unwrap());
        assert_eq!(
            indexed(&store).await,
            vec![c.key],
            "both older sessions ended"
        );
        assert!(store.peek(&a.key).await.unwrap().is_none());
        // Destroying a session removes its entry, confirmed or pending.
        assert!(store.destroy(&c.key).await.unwrap());
        assert!(store.list_user("mallory").await.unwrap().is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let pw = Some("hunter2-secret".to_owned());
        let shown = [
            format!(
                "{:?}",
                Servers::One("redis://:hunter2-secret@h:6379/0".into())
            ),
            format!(
                "{:?}",
                Servers::Cluster(ClusterOptions {
                    nodes: vec!["h:1".into()],
                    password: pw.clone(),
                })
            ),
            format!(
                "{:?}",
                Servers::Sentinel(SentinelOptions {
                    addrs: vec!["h:2".into()],
                    master_name: "m".into(),
                    password: pw.clone(),
                    node_password: pw,
                    database: 0,
                })
            ),
        ];
        for s in shown {
            assert!(!s.contains("hunter2"), "{s}");
            assert!(s.contains("[redacted]"), "{s}");
        }
    }

    #[test]
    fn the_admin_deadline_is_ten_request_deadlines_and_at_least_two_seconds() {
        let d = |ms| admin_deadline(Duration::from_millis(ms));
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
}
