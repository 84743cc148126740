//! Redis Cluster (`[store.cluster]`): the seed nodes, the cluster client, and
//! the one command a cluster cannot route by itself (`SCAN`, per primary).
//!
//! What a cluster changes, and why:
//! - Every command and script the store sends names one key, so each goes to
//!   the slot that owns it; the key layout is the same as on one server and a
//!   store needs no migration. `MGET` and `DEL` over many sessions are split
//!   per slot by redis-rs's cluster client.
//! - No local cache: invalidation tracking is per node, and a cluster's
//!   primaries change with failovers and resharding, so the store does not
//!   try to follow them all. Every protected request reads its session from
//!   the cluster; a revocation is seen on every instance at once.
//! - Listing and counting `SCAN` each primary in turn (a fan-out of the first
//!   step names them).

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{FromRedisValue, RedisResult, Value};

/// `[store.cluster]` as configured; its `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `host:port` of each seed node: any of the cluster's nodes; the client
    /// learns the others from them.
    pub nodes: Vec<String>,
    /// The nodes' password (`store.password`), if any.
    pub password: Option<String>,
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("nodes", &self.nodes)
            .field("password", &super::redacted(&self.password))
            .finish()
    }
}

/// How often a command is retried after a redirection or a node failure
/// before it fails; the store's deadline cuts the retries short anyway.
const RETRIES: u32 = 3;

/// The cluster client for `options`.
///
/// `connect` bounds each connection attempt; `response` each answer, and is
/// the admin deadline (the request path has a shorter deadline of its own
/// around every call).
///
/// # Errors
/// If a seed address does not parse.
pub fn client(
    options: &ClusterOptions,
    connect: Duration,
    response: Duration,
) -> RedisResult<ClusterClient> {
    let nodes: Vec<String> = options
        .nodes
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect();
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(connect)
        .response_timeout(response)
        .retries(RETRIES);
    if let Some(p) = &options.password {
        builder = builder.password(p);
    }
    builder.build()
}

/// `SCAN` every primary for keys matching `pattern`, passing each name to
/// `each`. The first step goes to every primary at once and names them; each
/// then continues from its own cursor.
///
/// # Errors
/// A primary that does not answer, or answers an error: a listing is never
/// quietly partial.
pub async fn scan(
    conn: &mut ClusterConnection,
    pattern: &str,
    count: usize,
    mut each: impl FnMut(String),
) -> RedisResult<()> {
    let step = |cursor: u64| {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        cmd
    };
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let Value::Map(firsts) = conn.route_command(step(0), all).await? else {
        return Err(parse_error("SCAN fan-out did not answer per node"));
    };
    for (addr, page) in firsts {
        let addr = String::from_redis_value(addr)?;
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| parse_error("a node address without a port"))?;
        let mut cursor = page_into(page, &mut each)?;
        while cursor != 0 {
            let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            cursor = page_into(conn.route_command(step(cursor), node).await?, &mut each)?;
        }
    }
    Ok(())
}

/// One `SCAN` answer: its keys to `each`, and the next cursor.
fn page_into(page: Value, each: &mut impl FnMut(String)) -> RedisResult<u64> {
    if let Value::ServerError(e) = page {
        return Err(e.into());
    }
    let (cursor, keys) = <(u64, Vec<String>)>::from_redis_value(page)?;
    keys.into_iter().for_each(each);
    Ok(cursor)
}

fn parse_error(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, what))
}
