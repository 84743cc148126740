//! The backends: one named upstream per `[upstream.<name>]`, its addresses
//! behind a round-robin load balancer with a TCP health check, and the
//! timeouts of every connection to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::lb::{selection::RoundRobin, LoadBalancer};

/// One named upstream.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// Whether this upstream may issue session commands (`X-Session-Login`, …).
    pub session_commands: bool,
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
pub struct Upstream {
    pub config: UpstreamOptions,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
}

/// Health-check and build the load balancer for one upstream.
///
/// # Errors
/// If pingora rejects the addresses (it parses them again).
pub fn load_balancer(config: &UpstreamOptions) -> std::io::Result<LoadBalancer<RoundRobin>> {
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(config.addrs.iter().copied())?;
    let mut hc = pingora::lb::health_check::TcpHealthCheck::new();
    hc.peer_template.options.connection_timeout = Some(config.connect_timeout);
    lb.set_health_check(hc);
    lb.health_check_frequency = Some(config.health_check_interval.max(Duration::from_millis(100)));
    Ok(lb)
}
