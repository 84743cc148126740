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
//! touch are scripts (atomic read-and-slide). A login is ordered steps that
//! keep every live session in its user's index (`user_index.rs`).
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
//! re-checked after it is cached (`local.rs`).
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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::{AsyncCommands, ScanOptions, Script};

use crate::metrics::METRICS;
mod breaker;
mod call;
mod cluster;
mod conn;
mod credentials;
mod local;
mod options;
mod record;
mod sentinel;
mod tracking;
mod user_index;
mod watch;

pub(crate) use self::cluster::ClusterOptions;
pub(crate) use self::options::{RedisOptions, Servers};
pub(crate) use self::sentinel::SentinelOptions;
pub(crate) use self::watch::Watcher;

use self::breaker::Breaker;
use self::call::admin_deadline;
use self::conn::{unavailable, Conn, Conns, Target};
use self::local::Local;
use self::record::Record;
use self::user_index::{CONFIRM, INDEX};
use crate::session::{
    now_ms, Session, SessionCount, SessionKey, SessionStore, StoreError, StoreStats,
};

/// How many keys one `SCAN` step asks Redis to look at (its `COUNT`).
const SCAN_COUNT: usize = 1000;
/// A session is touched in Redis at most this often (and at least every tenth
/// of its idle time), so `resave = false` does not mean a write per request.
pub(crate) const TOUCH_INTERVAL: Duration = Duration::from_secs(5);

/// The Redis store.
pub(crate) struct RedisStore {
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

/// Remove a record and return it (a `GETDEL` that runs on Redis 6.0).
const TAKE: &str = include_str!("scripts/take.lua");

const TOUCH: &str = include_str!("scripts/touch.lua");

/// Read a session and, when its idle expiry was last moved more than ARGV[2]
/// ms (or a tenth of its idle time) ago, move it: loading is using.
const LOAD: &str = include_str!("scripts/load.lua");

const COUNT: &str = include_str!("scripts/count.lua");

/// Session keys counted per `COUNT` script call (or `MGET` on a cluster).
const COUNT_BATCH: usize = 500;

impl RedisStore {
    /// A store for `config`; nothing is connected until first use.
    ///
    /// # Errors
    /// If an address cannot be parsed.
    pub(crate) fn new(
        config: RedisOptions,
        max_per_user: usize,
    ) -> Result<RedisStore, redis::RedisError> {
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
    pub(crate) fn healthy(&self) -> bool {
        self.tracking.load(Ordering::Relaxed) && !self.breaker.is_open()
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

    /// The record goes first, its user's index entry after (see
    /// `user_index.rs`); `GETDEL` needs Redis 6.2 or later.
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
