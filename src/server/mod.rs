//! Wiring: turn a validated [`Config`] into a pingora `Server` with the proxy
//! services (one single-threaded service per worker, plain and TLS
//! listeners), the admin listener, the reloader (which also runs the
//! upstreams' health checks), and logging.
//!
//! This module holds no request logic; it only assembles services. Its
//! files: [`reload`] (SIGHUP and changed files → the next config
//! generation), [`logging`] (the subscriber a reload can change) and
//! [`signals`] (what SIGINT, SIGTERM and SIGQUIT do).

mod logging;
mod reload;
mod signals;

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{
    L4BufferSettings, ListenerConfig, TcpSocketOptions, DEFAULT_L4_WRITE_BUFFER_SIZE,
};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;

pub use self::logging::init as init_logging;
use self::reload::{FirstGeneration, Reloader};
use crate::admin::{self, Admin};
use crate::auth::Auth;
use crate::config::Config;
use crate::config::StoreConfig;
use crate::http::connections;
use crate::http::tls::Certificates;
use crate::proxy::{self, Proxy, ProxyOptions, Upstream};
use crate::session::credentials::file::FileHome;
use crate::session::credentials::Home;
use crate::session::manager::SessionManager;
use crate::session::redis::{RedisStore, Watcher};
use crate::session::{MemoryOptions, MemoryStore, SessionStore};

/// Why the server could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An upstream could not be set up.
    #[error("upstream {name}: {source}")]
    Upstream {
        /// The upstream's name in the config.
        name: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The login could not be built from the config.
    #[error("{0}")]
    Auth(#[from] crate::auth::Error),
    /// The Redis session store could not be reached or set up.
    #[error("session store: {0}")]
    Redis(#[from] redis::RedisError),
    /// A listening address could not be bound.
    #[error("listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why binding it failed.
        source: std::io::Error,
    },
    /// The sockets of an upgrade could not be handed over.
    #[error("upgrade: {0}")]
    Upgrade(String),
    /// The credentials file could not be read.
    #[error("store.credentials_file: {0}")]
    Credentials(String),
}

/// A built server, and how it reacts to signals.
pub struct Built {
    server: Server,
    signals: signals::Signals,
}

impl Built {
    /// Serve until a signal says stop, then exit the process.
    pub fn run_forever(self) -> ! {
        self.server.run(RunArgs {
            shutdown_signal: Box::new(self.signals),
        });
        std::process::exit(0)
    }
}

/// Build the pingora server for `config`, read from `path` (which the
/// reloader watches). With `upgrade`, the listening sockets are taken over
/// from the running instance (`sessiongate run --upgrade`, then SIGQUIT to
/// the old process) instead of bound.
///
/// # Errors
/// An address in use, an upstream pingora rejects, a store that cannot be set up.
pub fn build(config: Config, path: &Path, upgrade: bool) -> Result<Built, Error> {
    tracing::info!(
        listen = ?config.listen,
        tls = config.tls.iter().map(|t| t.listen.len()).sum::<usize>(),
        upstreams = config.upstreams.len(),
        upgrade,
        "sessiongate starting"
    );
    let config = Arc::new(config);
    let all_listen: Vec<std::net::SocketAddr> = config
        .listen
        .iter()
        .chain(config.tls.iter().flat_map(|t| &t.listen))
        .copied()
        .collect();
    if upgrade {
        if config.upgrade_socket.is_none() {
            return Err(Error::Upgrade(
                "--upgrade needs server.upgrade_socket in the config".to_owned(),
            ));
        }
        // The old instance holds the locks until it exits.
        claim_when_free(all_listen);
    } else {
        claim(&all_listen)?;
        check_free(all_listen.iter().chain([&config.admin.listen]))?;
    }
    let conf = ServerConf {
        threads: config.threads,
        // The proxy runs one single-threaded service per worker (see
        // `add_proxy_services`); the admin listener and background tasks
        // do not need a shared work-stealing runtime either.
        work_stealing: false,
        // pingora waits 300 s after SIGTERM by default (pingora#98 made it a
        // setting); orchestrators do not.
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.shutdown_timeout.as_secs()),
        // Never pingora's default in /tmp, where another user could listen
        // first and receive our sockets: without a configured path SIGQUIT
        // is a plain graceful stop (see `signals`).
        upgrade_sock: config
            .upgrade_socket
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string()),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);

    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    for u in &config.upstreams {
        let lb = proxy::load_balancer(u).map_err(|source| Error::Upstream {
            name: u.name.clone(),
            source,
        })?;
        upstreams.push(Upstream {
            config: u.clone(),
            lb: Arc::new(lb),
        });
    }

    match &config.store {
        StoreConfig::Memory => {
            let s = &config.session;
            let store = Arc::new(MemoryStore::new(MemoryOptions {
                capacity: s.capacity,
                anonymous_capacity: s.anonymous_capacity,
                idle_timeout: s.idle_timeout,
                max_per_user: s.max_per_user,
            }));
            let credentials =
                match &config.credentials_file {
                    Some(file) => Some(Arc::new(FileHome::open(file).map_err(Error::Credentials)?)
                        as Arc<dyn Home>),
                    None => None,
                };
            add_services(&mut server, &config, path, store, credentials, upstreams)?;
        }
        StoreConfig::Redis(redis) => {
            let store = Arc::new(RedisStore::new(redis.clone(), config.session.max_per_user)?);
            server.add_service(background_service(
                "redis invalidations",
                Watcher(store.clone()),
            ));
            let credentials = Some(store.clone() as Arc<dyn Home>);
            add_services(&mut server, &config, path, store, credentials, upstreams)?;
        }
    }
    if upgrade {
        // Receive the listening sockets from the old process, which sends
        // them on SIGQUIT (pingora waits about 5 s for it).
        server.bootstrap();
    }
    Ok(Built {
        server,
        signals: signals::Signals {
            upgrade: config.upgrade_socket.is_some(),
            exit_within: config.shutdown_timeout + signals::FAST_EXIT_SLACK,
        },
    })
}

/// The instance locks of [`claim`], held until the process exits.
static CLAIMS: std::sync::Mutex<Vec<std::os::unix::net::UnixListener>> =
    std::sync::Mutex::new(Vec::new());

/// Take this host's lock on each client listening address: an abstract Unix
/// socket named after it, which the kernel frees when the process exits.
///
/// The workers' sockets set `SO_REUSEPORT` (see [`add_proxy_services`]), so
/// two instances started in the same instant would both pass [`check_free`]
/// and then share the port, the kernel splitting connections between them
/// (measured: 10 starts in 10). The lock makes the second one stop at once
/// instead, naming the address. It cannot stop another program that sets
/// `SO_REUSEPORT` under the same user: run sessiongate under its own user
/// (`DynamicUser=yes` in deploy/sessiongate.service).
fn claim(addrs: &[std::net::SocketAddr]) -> Result<(), Error> {
    use std::os::linux::net::SocketAddrExt;
    for addr in addrs {
        let name = format!("sessiongate listen {addr}");
        let held = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| std::os::unix::net::UnixListener::bind_addr(&a))
            .map_err(|e| Error::Listen {
                addr: *addr,
                source: if e.kind() == std::io::ErrorKind::AddrInUse {
                    std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "Address already in use by another sessiongate on this host",
                    )
                } else {
                    e
                },
            })?;
        CLAIMS.lock().unwrap_or_else(|p| p.into_inner()).push(held);
    }
    Ok(())
}

/// [`claim`] for an instance that took its sockets over (`--upgrade`): the
/// old instance holds the locks until it exits, so take each as soon as it
/// is free, from a thread of its own (a minute at most).
fn claim_when_free(addrs: Vec<std::net::SocketAddr>) {
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for addr in addrs {
            while claim(std::slice::from_ref(&addr)).is_err() {
                if std::time::Instant::now() > deadline {
                    tracing::warn!(%addr, "the old instance still holds its listen lock after a minute");
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    });
}

/// Bind every listening address once, and let go, before pingora does.
///
/// pingora itself retries a busy address for about 30 s and then panics in
/// that service's thread while the process serves on with the others
/// (pingora#667, open; #502). So a
/// port in use (by anyone, another sessiongate included) stops start-up here,
/// at once, naming the address. A process that takes the port in the instant
/// between this probe and pingora's bind is not caught (pingora's retry then
/// applies), except another sessiongate, which [`claim`] stops.
fn check_free<'a>(addrs: impl Iterator<Item = &'a std::net::SocketAddr>) -> Result<(), Error> {
    for addr in addrs {
        std::net::TcpListener::bind(addr).map_err(|source| Error::Listen {
            addr: *addr,
            source,
        })?;
    }
    Ok(())
}

/// `addr` with `worker` leading zeros before its port (see [`add_proxy_services`]).
fn worker_spelling(addr: &std::net::SocketAddr, worker: usize) -> String {
    // The address as it prints (an IPv6 scope id included), zeros before the port.
    let text = addr.to_string();
    let (host, port) = text.rsplit_once(':').expect("a socket address has a port");
    format!("{host}:{}{port}", "0".repeat(worker))
}

fn reuse_port() -> TcpSocketOptions {
    let mut opt = TcpSocketOptions::default();
    opt.so_reuseport = Some(true);
    opt
}

/// A TLS listener's settings: TLS 1.2 and 1.3 only (pingora's rustls
/// listener offers nothing older), HTTP/2 or HTTP/1.1 by ALPN, and the
/// certificate from `certificates` at each handshake, so a reload swaps it.
fn tls_settings(certificates: &Arc<Certificates>) -> TlsSettings {
    // No files: a resolver picks the pair; the callback keeps the name the
    // client asked for with the connection (`http::tls::Sni`).
    let mut settings = TlsSettings::with_callbacks(Box::new(crate::http::tls::RecordSni))
        .expect("no files are read here");
    settings.set_cert_resolver(certificates.clone());
    settings.enable_h2();
    settings
}

/// The services that depend on the store: reloader, admin, proxy.
fn add_services<S: SessionStore>(
    server: &mut Server,
    config: &Arc<Config>,
    path: &Path,
    store: Arc<S>,
    credentials: Option<Arc<dyn Home>>,
    upstreams: Vec<Upstream>,
) -> Result<(), Error> {
    let sessions = Arc::new(SessionManager::new(config.session.clone(), store));
    let auth = Arc::new(Auth::new(config.auth.clone(), credentials)?);
    let proxies = Arc::new(ArcSwap::from_pointee(proxy_of(
        config, &sessions, &auth, &upstreams,
    )));
    let admins = Arc::new(ArcSwap::from_pointee(admin_app(
        config, &sessions, &auth, &upstreams,
    )));
    let certificates: Vec<Arc<Certificates>> = config
        .tls
        .iter()
        .map(|t| Certificates::new(&t.pairs))
        .collect();

    let admin = admin::CurrentAdmin::new(admins.clone());
    let guarded = connections::Guarded::admin(admin, config.connections.head_timeout);
    let mut admin_service = pingora::services::listening::Service::new("admin".to_owned(), guarded);
    admin_service.add_tcp(&config.admin.listen.to_string());
    server.add_service(admin_service);
    add_proxy_services(server, config, &proxies, &certificates)?;
    server.add_service(background_service(
        "config reloader",
        Reloader::new(
            path,
            FirstGeneration {
                config: config.clone(),
                sessions,
                auth,
                upstreams,
                proxies,
                admins,
                certificates,
            },
        ),
    ));
    Ok(())
}

/// What the request path needs from `config`, built once per generation.
fn proxy_of<S: SessionStore>(
    config: &Config,
    sessions: &Arc<SessionManager<S>>,
    auth: &Arc<Auth>,
    upstreams: &[Upstream],
) -> Proxy<S> {
    let options = Arc::new(ProxyOptions {
        trusted_proxies: config.trusted_proxies.clone(),
        client_idle_timeout: config.client_idle_timeout,
        auth_prefix: config.auth.prefix.clone(),
        login_url: config.auth.login_url.clone(),
        rules: config.rules.clone(),
        access_log: config.log.access_log,
        identity: config.identity.clone(),
        assertions: config
            .assertion
            .as_ref()
            .and_then(proxy::assertion::Assertions::new),
    });
    Proxy::new(options, sessions.clone(), auth.clone(), upstreams.to_vec())
}

/// The admin app of one generation.
fn admin_app<S: SessionStore>(
    config: &Config,
    sessions: &Arc<SessionManager<S>>,
    auth: &Arc<Auth>,
    upstreams: &[Upstream],
) -> Admin<S> {
    let lbs = upstreams.iter().map(|u| u.lb.clone()).collect();
    let jwks = config
        .assertion
        .as_ref()
        .and_then(proxy::assertion::Assertions::new)
        .map(|a| a.jwks().to_owned());
    Admin::new(
        sessions.clone(),
        auth.clone(),
        config.admin.token.as_ref(),
        lbs,
        jwks,
    )
}

/// The proxy itself: one single-threaded pingora service per configured
/// thread, each with its own listening socket on every address
/// (`SO_REUSEPORT`, the kernel spreads connections) and its own upstream
/// connection pool, as nginx runs one worker per core.
///
/// pingora keeps one socket per address *string* in its fd table and hands an
/// address it has seen to the next service as the same descriptor, which each
/// service then owns and closes: a double close at shutdown (an abort in a
/// debug build, and in a release build the second close can hit a descriptor
/// reused in between; pingora PR #990, open, keeps distinct sockets). So each
/// worker spells the port with its own number of
/// leading zeros (`127.0.0.1:8080`, `127.0.0.1:08080`, …): the same address to
/// the kernel, a key of its own in the table, a socket of its own.
///
/// Why not one service with `threads` threads: pingora returns every upstream
/// connection to its pool through a task spawned on a *random* thread of the
/// service, so with two threads about every other proxied request wakes the
/// other thread (a futex wake and a context switch each way). With one thread
/// per service that task stays where the request ran: measured in
/// `bench/README.md`. Every worker serves the same current proxy ([`proxy::CurrentProxy`]).
fn add_proxy_services<S: SessionStore>(
    server: &mut Server,
    config: &Arc<Config>,
    proxies: &Arc<ArcSwap<Proxy<S>>>,
    certificates: &[Arc<Certificates>],
) -> Result<(), Error> {
    let workers = config.threads.max(1);
    if workers > 1 {
        let mut all = config
            .listen
            .iter()
            .chain(config.tls.iter().flat_map(|t| &t.listen));
        if let Some(addr) = all.find(|a| a.port() == 0) {
            // Each worker would get a different ephemeral port.
            return Err(Error::Listen {
                addr: *addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "port 0 needs server.threads = 1 (each worker binds its own socket)",
                ),
            });
        }
    }
    for worker in 0..workers {
        let name = if workers == 1 {
            "sessiongate".to_owned()
        } else {
            format!("sessiongate {worker}")
        };
        let mut proxy = pingora::proxy::http_proxy(
            &server.configuration,
            proxy::CurrentProxy::new(proxies.clone()),
        );
        // An HTTP/2 connection with no stream open ends after the idle timeout
        // (pingora keeps it for ever otherwise; HTTP/1.1's keep-alive is set
        // per request by the proxy). Read once here, so a reload changes it
        // for HTTP/1.1 only; proxy.toml says so.
        let mut options = HttpServerOptions::default();
        options.h2_idle_timeout = Some(config.client_idle_timeout);
        proxy.server_options = Some(options);
        let mut guarded = connections::Guarded::new(proxy, config.connections);
        for (tls, certificates) in config.tls.iter().zip(certificates) {
            let acceptor = Arc::new(tls_settings(certificates).build());
            for addr in &tls.listen {
                guarded = guarded.with_tls(*addr, acceptor.clone());
            }
        }
        let mut service = pingora::services::listening::Service::new(name, guarded);
        service.threads = Some(1);
        // TLS addresses are TCP listeners to pingora too: `Guarded` handshakes
        // (with a deadline, inside the connection cap).
        let buffer = L4BufferSettings::new(config.read_buffer, DEFAULT_L4_WRITE_BUFFER_SIZE);
        for addr in config
            .listen
            .iter()
            .chain(config.tls.iter().flat_map(|t| &t.listen))
        {
            let listener = if workers == 1 {
                ListenerConfig::tcp(addr.to_string())
            } else {
                ListenerConfig::tcp(worker_spelling(addr, worker)).tcp_socket_options(reuse_port())
            };
            service.add_listener(listener.l4_buffer(buffer));
        }
        server.add_service(service);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::worker_spelling;
    use std::net::{SocketAddr, ToSocketAddrs};

    #[test]
    fn each_worker_spells_the_same_address_its_own_way() {
        for addr in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%2]:8443"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let spellings: Vec<String> = (0..4).map(|w| worker_spelling(&addr, w)).collect();
            assert_eq!(spellings[0], addr.to_string());
            for s in &spellings {
                // What pingora does with it: to_socket_addrs.
                assert_eq!(s.to_socket_addrs().unwrap().next(), Some(addr), "{s}");
            }
            let mut unique = spellings.clone();
            unique.dedup();
            assert_eq!(unique.len(), 4, "{spellings:?}");
        }
    }
}
