//! Keeping the Redis store's local cache honest: the invalidation listener
//! (a pingora background service, [`Watcher`]) runs one tracking connection
//! (`tracking.rs`) to the server, or one per primary of a cluster, and turns
//! every invalidation, drop or missed heartbeat into evictions or a flush.
//!
//! It does not read or write sessions; `mod.rs` does.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::conn::{Conn, Conns, Target};
use super::tracking::{self, Invalidated};
use super::{cluster, ClusterOptions, RedisStore, Servers};

/// How often the set of a cluster's primaries is asked for again.
const CLUSTER_HEARTBEAT: Duration = Duration::from_millis(200);

impl RedisStore {
    /// The invalidation listener: keeps one tracking connection, flushes the
    /// local cache on every invalidation, drop or missed heartbeat. Runs until
    /// `stop` resolves.
    pub(crate) async fn watch(&self, mut stop: impl Future<Output = ()> + Unpin) {
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

    /// One round of invalidation tracking, until it fails: one connection
    /// to the server, or one per primary of a cluster. Every invalidation
    /// bumps the generation, so a read that raced it is re-checked.
    async fn track(&self) -> std::io::Result<()> {
        let prefix = format!("{}sess:", self.config.prefix);
        let conns = self.conns().await;
        let result = match (&conns.target, &self.config.servers) {
            (Target::Server(client), _) => {
                let on_ready = || {
                    // From here on, the local cache is kept honest by this connection.
                    self.flush_local();
                    self.tracking.store(true, Ordering::Relaxed);
                };
                let on_invalidate = |i| self.invalidated(i);
                let info = client.get_connection_info();
                tracking::run(info, &prefix, self.config.timeout, on_ready, on_invalidate).await
            }
            (Target::Cluster(_), Servers::Cluster(options)) => {
                self.track_cluster(&conns, options, &prefix).await
            }
            _ => Err(std::io::Error::other("no Redis primary known")),
        };
        if result.is_err() {
            // The primary may be gone: the sentinels may name another.
            self.follow().await;
        }
        result
    }

    /// Track every primary of the cluster at once; the local cache is trusted
    /// once all of them track. Ends when one connection fails or the set of
    /// primaries changes (see `cluster.rs`).
    async fn track_cluster(
        &self,
        conns: &Conns,
        options: &ClusterOptions,
        prefix: &str,
    ) -> std::io::Result<()> {
        use std::io::Error;
        let primaries = || {
            conns.within(false, self.config.timeout, |c| async move {
                match c {
                    Conn::Cluster(mut c) => cluster::primaries(&mut c).await,
                    Conn::Server(_) => Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "a cluster target with a server connection",
                    ))),
                }
            })
        };
        let tracked = primaries().await.map_err(Error::other)?;
        let nodes = tracked
            .iter()
            .map(|a| cluster::node(a, options))
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(Error::other)?;
        let ready = std::sync::atomic::AtomicUsize::new(0);
        let on_ready = || {
            if ready.fetch_add(1, Ordering::SeqCst) + 1 == nodes.len() {
                self.flush_local();
                self.tracking.store(true, Ordering::Relaxed);
            }
        };
        let on_invalidate = |i| self.invalidated(i);
        let runs = nodes.iter().map(|info| {
            Box::pin(tracking::run(
                info,
                prefix,
                self.config.timeout,
                &on_ready,
                &on_invalidate,
            ))
        });
        let changed = async {
            let mut beat = tokio::time::interval(CLUSTER_HEARTBEAT);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                beat.tick().await;
                if primaries().await.map_err(Error::other)? != tracked {
                    return Err(Error::other("the cluster's primaries changed"));
                }
            }
        };
        tokio::select! {
            (ended, _, _) = futures::future::select_all(runs) => ended,
            ended = changed => ended,
        }
    }

    /// What an invalidation does to the local cache.
    fn invalidated(&self, invalidated: Invalidated) {
        match invalidated {
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
        }
    }
}

/// Runs [`RedisStore::watch`] as a pingora background service.
pub(crate) struct Watcher(pub Arc<RedisStore>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Watcher {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let stop = Box::pin(async move {
            let _ = shutdown.changed().await;
        });
        self.0.watch(stop).await;
    }
}
