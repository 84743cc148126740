//! Redis Cluster (`[store.cluster]`): the seed nodes, the cluster client, the
//! primaries it knows, and the one command a cluster cannot route by itself
//! (`SCAN`, per primary).
//!
//! What a cluster changes, and why:
//! - Every command and script the store sends names one key, so each goes to
//!   the slot that owns it; the key layout is the same as on one server and a
//!   store needs no migration. `MGET` and `DEL` over many sessions are split
//!   per slot by redis-rs's cluster client.
//! - Invalidations come from every primary: the store keeps one tracking
//!   connection per primary ([`primaries`] names them) and trusts its local
//!   cache only while all are up. It asks the cluster for its primaries again
//!   every heartbeat (200 ms); when the set changes (a failover, a new shard)
//!   it flushes the cache and tracks the new set. Writes a new primary took
//!   before that can have their invalidations missed: the cached copy then
//!   lives at most `local_ttl`, the same bound as everywhere.
//! - Listing and counting `SCAN` each primary in turn (a fan-out of the first
//!   step names them).

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{FromRedisValue, RedisResult, Value};

/// `[store.cluster]` as configured; its `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClusterOptions {
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
            .field("password", &super::options::redacted(&self.password))
            .finish()
    }
}

/// How often a command is retried after a redirection or a node failure
/// before it fails; the store's deadline cuts the retries short anyway.
const RETRIES: u32 = 3;
/// The waits between retries: redis-rs's default of over a second would
/// outlast any `store.timeout`, so a retry could never answer in time.
const RETRY_WAIT_MIN_MS: u64 = 10;
const RETRY_WAIT_MAX_MS: u64 = 100;

/// The cluster client for `options`.
///
/// `connect` bounds each connection attempt; `response` each answer, and is
/// the admin deadline (the request path has a shorter deadline of its own
/// around every call).
///
/// # Errors
/// If a seed address does not parse.
pub(super) fn client(
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
        .retries(RETRIES)
        .min_retry_wait(RETRY_WAIT_MIN_MS)
        .max_retry_wait(RETRY_WAIT_MAX_MS);
    if let Some(p) = &options.password {
        builder = builder.password(p);
    }
    builder.build()
}

/// The primaries as the cluster says now (`host:port`, sorted): the owner
/// of each slot range in `CLUSTER SLOTS`, asked of any node. Asked of the
/// cluster rather than taken from the client's own map, which may learn of a
/// promoted replica seconds later.
///
/// # Errors
/// No node answers, or the answer is not a slot table.
pub(super) async fn primaries(conn: &mut ClusterConnection) -> RedisResult<Vec<String>> {
    let any = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let ranges = Vec::<Value>::from_redis_value(conn.route_command(cmd, any).await?)?;
    let mut addrs = std::collections::BTreeSet::new();
    for range in ranges {
        // [start, end, [host, port, id, ...] of the primary, replicas...]
        let Value::Array(fields) = range else {
            return Err(parse_error("a CLUSTER SLOTS range is not an array"));
        };
        let Some(Value::Array(node)) = fields.get(2) else {
            return Err(parse_error("a CLUSTER SLOTS range names no primary"));
        };
        let (Some(host), Some(port)) = (node.first(), node.get(1)) else {
            return Err(parse_error("a CLUSTER SLOTS node without host and port"));
        };
        let host = String::from_redis_value_ref(host)?;
        let port = u16::from_redis_value_ref(port)?;
        addrs.insert(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        });
    }
    if addrs.is_empty() {
        // A node that lost its cluster state answers no slots at all.
        return Err(parse_error("CLUSTER SLOTS named no primary"));
    }
    Ok(addrs.into_iter().collect())
}

/// How to connect to the node at `addr` on its own (its tracking connection).
///
/// # Errors
/// If `addr` does not make a URL.
pub(super) fn node(addr: &str, options: &ClusterOptions) -> RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let info = format!("redis://{addr}").into_connection_info()?;
    Ok(match &options.password {
        Some(p) => {
            let settings = info.redis_settings().clone().set_password(p);
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

/// `SCAN` every primary for keys matching `pattern`, passing each name to
/// `each`. The first step goes to every primary at once and names them; each
/// then continues from its own cursor.
///
/// # Errors
/// A primary that does not answer, or answers an error: a listing is never
/// quietly partial.
pub(super) async fn scan(
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
