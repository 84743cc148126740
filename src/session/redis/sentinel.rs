//! Redis Sentinel (`[store.sentinel]`): which server is the primary now.
//!
//! The sentinels are asked through redis-rs's `Sentinel`, which also checks
//! that the server they name says it is a primary (`ROLE`). The store asks at
//! its first use and again after a failing call (at most every
//! [`ASK_EVERY`]); when the answer changes it connects to the new primary,
//! flushes its local cache (invalidations sent while it was away are lost) and
//! restarts the tracking connection there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::RedisConnectionInfo;

/// `[store.sentinel]` as configured; its `Debug` leaves the passwords out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelOptions {
    /// `host:port` of each sentinel.
    pub addrs: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master_name: String,
    /// The sentinels' own password (`requirepass` in sentinel.conf), if any.
    pub password: Option<String>,
    /// The Redis servers' password (`store.password`), if any.
    pub node_password: Option<String>,
    pub database: i64,
}

impl std::fmt::Debug for SentinelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelOptions")
            .field("addrs", &self.addrs)
            .field("master_name", &self.master_name)
            .field("password", &super::options::redacted(&self.password))
            .field(
                "node_password",
                &super::options::redacted(&self.node_password),
            )
            .field("database", &self.database)
            .finish()
    }
}

/// The sentinels are asked at most this often; failing calls in between
/// wait for the answer of the one that asked.
pub(super) const ASK_EVERY: Duration = Duration::from_millis(100);

/// The sentinels, and when they were last asked.
pub(super) struct Link {
    sentinel: tokio::sync::Mutex<Sentinel>,
    options: SentinelOptions,
    node: SentinelNodeConnectionInfo,
    asked: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addrs", &self.options.addrs)
            .field("master_name", &self.options.master_name)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// # Errors
    /// If an address does not parse.
    pub(super) fn new(options: SentinelOptions) -> redis::RedisResult<Link> {
        let urls: Vec<String> = options
            .addrs
            .iter()
            .map(|a| match &options.password {
                Some(p) => format!(
                    "redis://:{}@{a}",
                    form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
                ),
                None => format!("redis://{a}"),
            })
            .collect();
        let sentinel = Sentinel::build(urls)?;
        let mut info = RedisConnectionInfo::default().set_db(options.database);
        if let Some(p) = &options.node_password {
            info = info.set_password(p);
        }
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
        Ok(Link {
            sentinel: tokio::sync::Mutex::new(sentinel),
            options,
            node,
            asked: Mutex::new(None),
        })
    }

    /// A client for the primary the sentinels name now, or `None` when they
    /// were asked less than [`ASK_EVERY`] ago or another call is asking.
    ///
    /// # Errors
    /// When no sentinel answers with a primary that confirms it.
    pub(super) async fn primary(
        &self,
        deadline: Duration,
    ) -> Option<redis::RedisResult<redis::Client>> {
        let mut sentinel = self.sentinel.try_lock().ok()?;
        {
            let mut asked = self
                .asked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if asked.is_some_and(|t| t.elapsed() < ASK_EVERY) {
                return None;
            }
            *asked = Some(Instant::now());
        }
        let found = tokio::time::timeout(
            deadline,
            sentinel.async_master_for(&self.options.master_name, Some(&self.node)),
        )
        .await;
        Some(found.unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the sentinels did not answer in time",
            )))
        }))
    }
}
