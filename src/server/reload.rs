//! Reload of the whole configuration: on SIGHUP, and when `proxy.toml` or a
//! file it names (secrets, users file, certificates) changes.
//!
//! A reload reads and validates the file exactly as `sessiongate check` does,
//! then builds the next generation beside the one serving: the auth (users
//! file read again, throttles kept), a session manager over the *same* store
//! (so sessions survive; new secrets sign, all verify), the upstreams (a load
//! balancer whose addresses and checks did not change is kept with its health
//! state), the proxy and the admin app. Only then is it swapped in, one atomic
//! store per listener kind: a request is served by the old generation or the
//! new one, never a mix ([`crate::proxy::CurrentProxy`]). Certificates and logging
//! follow, and the sessions of users the new users file removed are ended.
//!
//! A file that fails validation changes nothing: the error is logged as
//! `check` prints it and the last good config keeps serving. What only a
//! restart can change (listening addresses, the store, worker count, …) is
//! refused whole, naming each key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::server::ShutdownWatch;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::auth::Auth;
use crate::config::{Config, StoreConfig};
use crate::http::tls::Certificates;
use crate::metrics::{Reload, METRICS};
use crate::proxy::{self, Proxy, Upstream};
use crate::session::manager::SessionManager;
use crate::session::SessionStore;

/// How often the watched files are looked at.
const POLL: Duration = Duration::from_secs(1);

type Balancer = Arc<LoadBalancer<RoundRobin>>;

/// The background service that owns the config generations.
pub(super) struct Reloader<S> {
    path: PathBuf,
    proxies: Arc<ArcSwap<Proxy<S>>>,
    admins: Arc<ArcSwap<Admin<S>>>,
    /// One per `[[server.tls]]`, in order (their number cannot change).
    certificates: Vec<Arc<Certificates>>,
    state: Mutex<State<S>>,
}

/// The generation serving now, and what the next one is built from.
struct State<S> {
    config: Arc<Config>,
    sessions: Arc<SessionManager<S>>,
    auth: Arc<Auth>,
    upstreams: Vec<Upstream>,
    /// The running health checks, each stopped by its sender.
    health: Vec<(Balancer, watch::Sender<bool>)>,
    /// The watched files (`proxy.toml` and those named by the newest
    /// version of it, refused or not), as they looked at the last attempt.
    seen: Vec<Stamp>,
}

/// The parts of the first generation, built by `server::build`.
pub(super) struct FirstGeneration<S> {
    pub config: Arc<Config>,
    pub sessions: Arc<SessionManager<S>>,
    pub auth: Arc<Auth>,
    pub upstreams: Vec<Upstream>,
    pub proxies: Arc<ArcSwap<Proxy<S>>>,
    pub admins: Arc<ArcSwap<Admin<S>>>,
    pub certificates: Vec<Arc<Certificates>>,
}

impl<S: SessionStore> Reloader<S> {
    /// Watch `path` (the config file `first` was loaded from).
    pub(super) fn new(path: &Path, first: FirstGeneration<S>) -> Self {
        METRICS
            .config_generation
            .store(1, std::sync::atomic::Ordering::Relaxed);
        METRICS
            .config_loaded_at
            .store(unix_now(), std::sync::atomic::Ordering::Relaxed);
        let seen = stamps(path, &first.config.files);
        Reloader {
            path: path.to_owned(),
            proxies: first.proxies,
            admins: first.admins,
            certificates: first.certificates,
            state: Mutex::new(State {
                config: first.config,
                sessions: first.sessions,
                auth: first.auth,
                upstreams: first.upstreams,
                health: Vec::new(),
                seen,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<S>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start the health checks of the first generation's upstreams.
    fn start_health_checks(&self) {
        let mut state = self.state();
        let lbs: Vec<Balancer> = state.upstreams.iter().map(|u| u.lb.clone()).collect();
        for lb in lbs {
            let stop = spawn_health_check(&lb);
            state.health.push((lb, stop));
        }
    }

    /// Reload if a watched file changed since the last attempt.
    async fn poll(&self) {
        let changed = {
            let mut state = self.state();
            let now = restamp(&state.seen);
            let changed = now != state.seen;
            state.seen = now;
            changed
        };
        if changed {
            tracing::info!(target: "config", "a config file changed: reloading");
            self.reload().await;
        }
    }

    /// Load, validate and apply the config file; log and count the result.
    pub(super) async fn reload(&self) {
        let revoked = match self.apply() {
            Ok(revoked) => revoked,
            Err((how, message)) => {
                METRICS.reload(how);
                tracing::error!(target: "config", error = %message, "config not reloaded; the last good config keeps serving");
                return;
            }
        };
        METRICS.reload(Reload::Applied);
        let sessions = self.state().sessions.clone();
        // The users file no longer lets these users in: end their sessions,
        // as an admin revoke would.
        for user in revoked {
            match sessions.destroy_user(&user).await {
                Ok(n) => {
                    tracing::info!(target: "auth", user = %user, sessions = n, "user removed or disabled: sessions ended")
                }
                Err(e) => {
                    tracing::error!(target: "auth", user = %user, error = %e, "could not end the sessions of a removed user")
                }
            }
        }
    }

    /// Build the next generation and swap it in; the users to sign out.
    fn apply(&self) -> Result<Vec<String>, (Reload, String)> {
        let config = match Config::load(&self.path) {
            Ok(config) => config,
            Err(e) => {
                // Watch what the refused file names, readable or not: a
                // Kubernetes Secret often lands after the ConfigMap naming it.
                // The serving config's files stay watched too (a syntax error
                // names none).
                let mut state = self.state();
                let mut files = e.files().to_vec();
                files.extend(state.config.files.iter().cloned());
                state.seen = stamps(&self.path, &files);
                return Err((Reload::Invalid, e.to_string()));
            }
        };
        let mut state = self.state();
        // Whatever happens next, these are the files as this attempt saw them.
        state.seen = stamps(&self.path, &config.files);
        let fixed = restart_only(&state.config, &config);
        if !fixed.is_empty() {
            return Err((
                Reload::Refused,
                format!(
                    "{}: {} cannot change without a restart",
                    self.path.display(),
                    fixed.join(", ")
                ),
            ));
        }
        let (auth, revoked) = state
            .auth
            .next(config.auth.clone())
            .map_err(|e| (Reload::Invalid, format!("{}: {e}", self.path.display())))?;
        let upstreams = next_upstreams(&state.upstreams, &config)
            .map_err(|e| (Reload::Invalid, format!("{}: {e}", self.path.display())))?;

        // Everything is built: from here on nothing fails.
        let config = Arc::new(config);
        let auth = Arc::new(auth);
        let sessions = Arc::new(state.sessions.next(config.session.clone()));
        self.proxies.store(Arc::new(super::proxy_of(
            &config, &sessions, &auth, &upstreams,
        )));
        self.admins.store(Arc::new(super::admin_app(
            &config, &sessions, &auth, &upstreams,
        )));
        for (certs, tls) in self.certificates.iter().zip(&config.tls) {
            certs.replace(&tls.pairs);
        }
        super::logging::apply(&state.config.log, &config.log);

        // Health checks: keep the kept balancers', stop the rest, start the new.
        let mut health = Vec::with_capacity(upstreams.len());
        for (lb, stop) in std::mem::take(&mut state.health) {
            if upstreams.iter().any(|u| Arc::ptr_eq(&u.lb, &lb)) {
                health.push((lb, stop));
            } else {
                let _ = stop.send(true);
            }
        }
        for u in &upstreams {
            if !health.iter().any(|(lb, _)| Arc::ptr_eq(lb, &u.lb)) {
                health.push((u.lb.clone(), spawn_health_check(&u.lb)));
            }
        }

        let generation = METRICS
            .config_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        METRICS
            .config_loaded_at
            .store(unix_now(), std::sync::atomic::Ordering::Relaxed);
        tracing::info!(target: "config", generation, path = %self.path.display(), "config reloaded");
        *state = State {
            config,
            sessions,
            auth,
            upstreams,
            health,
            seen: std::mem::take(&mut state.seen),
        };
        Ok(revoked)
    }
}

#[async_trait::async_trait]
impl<S: SessionStore> pingora::services::background::BackgroundService for Reloader<S> {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.start_health_checks();
        // pingora leaves SIGHUP alone, and its default action ends the process.
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler; config files are still polled");
                None
            }
        };
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.poll().await,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!(target: "config", "SIGHUP: reloading the config");
                    self.reload().await;
                }
            }
        }
    }
}

/// Run `lb`'s health checks until the returned sender says stop.
fn spawn_health_check(lb: &Balancer) -> watch::Sender<bool> {
    let (stop, watch) = watch::channel(false);
    let lb = lb.clone();
    tokio::spawn(async move { lb.run(watch, None).await });
    stop
}

/// The upstreams of `config`, keeping each load balancer (and its health
/// state) whose addresses and check did not change.
fn next_upstreams(old: &[Upstream], config: &Config) -> std::io::Result<Vec<Upstream>> {
    let mut out = Vec::with_capacity(config.upstreams.len());
    for u in &config.upstreams {
        let kept = old.iter().find(|o| {
            o.config.name == u.name
                && o.config.addrs == u.addrs
                && o.config.connect_timeout == u.connect_timeout
                && o.config.health_check_interval == u.health_check_interval
        });
        let lb =
            match kept {
                Some(o) => o.lb.clone(),
                None => Arc::new(proxy::load_balancer(u).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("upstream.{}: {e}", u.name))
                })?),
            };
        out.push(Upstream {
            config: u.clone(),
            lb,
        });
    }
    Ok(out)
}

/// The keys whose change needs a restart, each named once.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut fixed = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            fixed.push(key);
        }
    };
    check(old.listen != new.listen, "server.listen");
    let tls_addrs = |c: &Config| c.tls.iter().map(|t| t.listen.clone()).collect::<Vec<_>>();
    check(
        tls_addrs(old) != tls_addrs(new),
        "server.tls[].listen (and the number of [[server.tls]])",
    );
    check(old.threads != new.threads, "server.threads");
    check(old.grace_period != new.grace_period, "server.grace_period");
    check(
        old.shutdown_timeout != new.shutdown_timeout,
        "server.shutdown_timeout",
    );
    check(
        old.connections.max_connections != new.connections.max_connections,
        "server.max_connections",
    );
    check(old.read_buffer != new.read_buffer, "server.read_buffer");
    check(
        old.connections.head_timeout != new.connections.head_timeout,
        "server.request_head_timeout",
    );
    check(
        old.upgrade_socket != new.upgrade_socket,
        "server.upgrade_socket",
    );
    check(old.admin.listen != new.admin.listen, "admin.listen");
    check(
        old.credentials_file != new.credentials_file,
        "store.credentials_file",
    );
    let (o, n) = (&old.session, &new.session);
    check(
        o.max_per_user != n.max_per_user,
        "session.max_per_user (the store enforces it)",
    );
    match (&old.store, &new.store) {
        (StoreConfig::Memory, StoreConfig::Memory) => {
            // The memory store is built with these.
            check(o.capacity != n.capacity, "session.capacity");
            check(
                o.anonymous_capacity != n.anonymous_capacity,
                "session.anonymous_capacity",
            );
            check(
                o.idle_timeout != n.idle_timeout,
                "session.idle_timeout (the memory store's expiry)",
            );
        }
        (StoreConfig::Redis(a), StoreConfig::Redis(b)) => check(a != b, "[store]"),
        _ => check(true, "store.kind"),
    }
    fixed
}

/// What a watched file looked like: enough to see an edit, a replacement
/// (a new inode, as editors and Kubernetes' symlink swap do) or a removal.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    seen: Option<(SystemTime, u64, u64)>,
}

/// `path` and `files` as they look now; a file named twice is stamped once.
fn stamps(path: &Path, files: &[PathBuf]) -> Vec<Stamp> {
    let mut out: Vec<Stamp> = Vec::with_capacity(files.len() + 1);
    for p in std::iter::once(path).chain(files.iter().map(PathBuf::as_path)) {
        if !out.iter().any(|s| s.path == p) {
            out.push(stamp(p));
        }
    }
    out
}

/// The same files as `seen`, as they look now.
fn restamp(seen: &[Stamp]) -> Vec<Stamp> {
    seen.iter().map(|s| stamp(&s.path)).collect()
}

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp {
        path: path.to_owned(),
        seen: std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().unwrap_or(UNIX_EPOCH), m.len(), m.ino())),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_server: &str, store: &str) -> Config {
        std::env::set_var(
            "SESSIONGATE_TEST_SECRET_RELOAD",
            "0123456789abcdef0123456789abcdef",
        );
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:8080\"]\n{extra_server}\n[session]\nsecrets = [{{ env = \"SESSIONGATE_TEST_SECRET_RELOAD\" }}]\n[upstream.app]\naddrs = [\"127.0.0.1:9\"]\n{store}\n"
        );
        Config::parse(&text, Path::new(".")).expect("valid")
    }

    #[test]
    fn only_what_needs_a_restart_is_refused() {
        let base = config("", "");
        assert!(restart_only(&base, &config("", "")).is_empty());
        assert!(restart_only(&base, &config("client_idle_timeout = \"5s\"", "")).is_empty());
        assert_eq!(
            restart_only(&base, &config("threads = 7", "")),
            ["server.threads"]
        );
        let moved = config("", "").listen;
        assert_eq!(moved, base.listen);
        let mut other = config("", "");
        other.listen = vec!["127.0.0.1:8081".parse().unwrap()];
        assert_eq!(restart_only(&base, &other), ["server.listen"]);
        let redis = config(
            "",
            "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"",
        );
        assert_eq!(restart_only(&base, &redis), ["store.kind"]);
        let mut capacity = config("", "");
        capacity.session.capacity = 5;
        assert_eq!(restart_only(&base, &capacity), ["session.capacity"]);
    }
}
