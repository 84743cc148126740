//! Where the Redis store's connections go, and the connections themselves: one
//! server (`store.url`, or the primary the sentinels name) through redis-rs's
//! `ConnectionManager`, or a Redis Cluster through its cluster connection,
//! which follows `MOVED`/`ASK` redirections and topology changes by itself.
//!
//! It does not decide what to send, keep deadlines for the breaker, or follow
//! the sentinels: the store does.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

use crate::session::StoreError;

/// Where the connections go.
pub(super) enum Target {
    /// With Sentinel, until the sentinels name a primary.
    Unknown,
    /// One server: `store.url`, or the primary the sentinels named.
    Server(redis::Client),
    /// A Redis Cluster, found through its seed nodes.
    Cluster(Box<ClusterClient>),
}

/// One connection of either kind; cheap to clone (both are handles to a
/// multiplexed connection).
#[derive(Clone)]
pub(super) enum Conn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A target and the two connections to it, made at first use.
pub(super) struct Conns {
    pub(super) target: Target,
    /// The request path's connection.
    conn: OnceCell<Conn>,
    /// Listing and stats: a connection of their own, so bulk replies neither
    /// queue ahead of request-path commands nor hit their response timeout.
    admin: OnceCell<Conn>,
}

impl Conns {
    pub(super) fn new(target: Target) -> Conns {
        Conns {
            target,
            conn: OnceCell::new(),
            admin: OnceCell::new(),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Run `op` on the request-path (or admin) connection, connecting it first
    /// if need be, within `deadline`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no server is known, the connection
    /// fails, Redis answers an error, or the deadline passes.
    pub(super) async fn within<T, F, Fut>(
        &self,
        admin: bool,
        deadline: Duration,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let cell = if admin { &self.admin } else { &self.conn };
        let result = tokio::time::timeout(deadline, async {
            let conn = cell
                .get_or_try_init(|| self.connect(deadline))
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

    async fn connect(&self, deadline: Duration) -> RedisResult<Conn> {
        match &self.target {
            Target::Unknown => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no Redis primary known (the sentinels did not name one)",
            ))),
            Target::Server(client) => {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(deadline))
                    .set_response_timeout(Some(deadline))
                    .set_number_of_retries(1);
                Ok(Conn::Server(
                    ConnectionManager::new_with_config(client.clone(), cfg).await?,
                ))
            }
            Target::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
