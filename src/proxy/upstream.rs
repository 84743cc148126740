//! The backends: one named upstream per `[upstream.<name>]`, its addresses
//! behind a round-robin load balancer with a TCP health check, and the
//! timeouts of every connection to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::prelude::{ConnectNoRoute, HttpPeer};

/// One named upstream.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamOptions {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// Whether this upstream may issue session commands (`X-Session-Login`, …).
    pub session_commands: bool,
    /// Whether the client's `Authorization` header reaches it (it is removed
    /// otherwise: a credential for sessiongate is not the upstream's).
    pub pass_authorization: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub health_check_interval: Duration,
    /// With `[assertion]` keys: requests to it carry `X-User-Assertion` with this `aud`.
    pub assertion_audience: Option<String>,
}

/// One upstream, ready for the request path.
#[derive(Clone)]
pub(crate) struct Upstream {
    pub config: UpstreamOptions,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
}

/// Health-check and build the load balancer for one upstream.
///
/// # Errors
/// If pingora rejects the addresses (it parses them again).
pub(crate) fn load_balancer(config: &UpstreamOptions) -> std::io::Result<LoadBalancer<RoundRobin>> {
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(config.addrs.iter().copied())?;
    let mut hc = pingora::lb::health_check::TcpHealthCheck::new();
    hc.peer_template.options.connection_timeout = Some(config.connect_timeout);
    lb.set_health_check(hc);
    lb.health_check_frequency = Some(config.health_check_interval.max(Duration::from_millis(100)));
    Ok(lb)
}

impl Upstream {
    /// The peer for one request: the next healthy address, round robin, with
    /// every timeout set (pingora's are unset, that is unbounded, by default).
    ///
    /// # Errors
    /// `ConnectNoRoute` (answered 502) when no address is healthy.
    pub(crate) fn peer(&self) -> pingora::Result<Box<HttpPeer>> {
        let backend = self.lb.select(b"", 256).ok_or_else(|| {
            pingora::Error::explain(ConnectNoRoute, "no healthy upstream address")
        })?;
        let mut peer = HttpPeer::new(backend, false, String::new());
        let c = &self.config;
        peer.options.connection_timeout = Some(c.connect_timeout);
        peer.options.total_connection_timeout = Some(c.connect_timeout);
        peer.options.read_timeout = Some(c.read_timeout);
        peer.options.write_timeout = Some(c.write_timeout);
        peer.options.idle_timeout = Some(c.idle_timeout);
        Ok(Box::new(peer))
    }
}
