//! Wiring: turn a validated [`Config`] into a pingora `Server` with the proxy
//! service, one health-check service per upstream, and logging.
//!
//! This module holds no request logic; it only assembles services.

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;

use crate::admin::Admin;
use crate::config::StoreConfig;
use crate::config::{Config, LogFormat};
use crate::lifecycle::Sessions;
use crate::login::{Login, UsersWatcher};
use crate::proxy::{self, Gate, Upstream};
use crate::redis_store::{RedisStore, Watcher};
use crate::session::{MemoryStore, SessionStore};

/// Why the server could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("upstream {name}: {source}")]
    Upstream {
        name: String,
        source: std::io::Error,
    },
    #[error("users file: {0}")]
    Users(#[from] crate::users::Error),
    #[error("session store: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Install the global tracing subscriber (text or JSON on stdout).
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Build the pingora server for `config`.
///
/// # Errors
/// If an upstream's addresses are rejected by pingora.
pub fn build(config: Config) -> Result<Server, Error> {
    let config = Arc::new(config);
    let conf = ServerConf {
        threads: config.threads,
        work_stealing: config.work_stealing,
        // pingora waits 300 s after SIGTERM by default; orchestrators do not.
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.shutdown_timeout.as_secs()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);

    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    for u in &config.upstreams {
        let lb = proxy::load_balancer(u).map_err(|source| Error::Upstream {
            name: u.name.clone(),
            source,
        })?;
        let hc = background_service(&format!("health check {}", u.name), lb);
        upstreams.push(Upstream {
            config: u.clone(),
            lb: hc.task(),
        });
        server.add_service(hc);
    }

    match &config.store {
        StoreConfig::Memory => {
            let store = Arc::new(MemoryStore::new(config.session.capacity));
            add_services(&mut server, &config, store, upstreams)?;
        }
        StoreConfig::Redis(redis) => {
            let store = Arc::new(RedisStore::new(redis.clone())?);
            server.add_service(background_service(
                "redis invalidations",
                Watcher(store.clone()),
            ));
            add_services(&mut server, &config, store, upstreams)?;
        }
    }
    Ok(server)
}

/// The services that depend on the store: users watcher, admin, proxy.
fn add_services<S: SessionStore>(
    server: &mut Server,
    config: &Arc<Config>,
    store: Arc<S>,
    upstreams: Vec<Upstream>,
) -> Result<(), Error> {
    let sessions = Arc::new(Sessions::new(config.session.clone(), store));
    let login = Arc::new(Login::new(config.auth.clone())?);
    server.add_service(background_service(
        "users file watcher",
        UsersWatcher {
            login: login.clone(),
            sessions: sessions.clone(),
        },
    ));
    let lbs = upstreams.iter().map(|u| u.lb.clone()).collect();
    let admin = Admin::new(sessions.clone(), config.admin.token.as_ref(), lbs);
    let mut admin = pingora::services::listening::Service::new("admin".to_owned(), admin);
    admin.add_tcp(&config.admin.listen.to_string());
    server.add_service(admin);
    let gate = Gate::new(config.clone(), sessions, login, upstreams);
    let mut service =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gate, "sessiongate");
    for addr in &config.listen {
        service.add_tcp(&addr.to_string());
    }
    server.add_service(service);
    Ok(())
}
