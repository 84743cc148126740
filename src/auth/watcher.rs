//! The users file at run time: reloaded when it changes or on SIGHUP, and the
//! sessions of removed or disabled users ended.

use std::sync::Arc;
use std::time::Duration;

use super::endpoints::Login;
use crate::session::manager::SessionManager;
use crate::session::SessionStore;

/// Reloads the users file when it changes (polled every second) or on SIGHUP,
/// and ends the sessions of users who were removed or disabled. A broken file
/// is logged and the last good version stays in force.
pub struct UsersWatcher<S> {
    pub login: Arc<Login>,
    pub sessions: Arc<SessionManager<S>>,
}

impl<S: SessionStore> UsersWatcher<S> {
    async fn reload(&self, force: bool) {
        match self.login.reload(force) {
            Ok(revoked) => {
                for user in revoked {
                    match self.sessions.destroy_user(&user).await {
                        Ok(n) => {
                            tracing::info!(target: "auth", user = %user, sessions = n, "user removed or disabled: sessions ended")
                        }
                        Err(e) => {
                            tracing::error!(target: "auth", user = %user, error = %e, "could not end the sessions of a removed user")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(target: "auth", error = %e, "users file not reloaded; keeping the last good version")
            }
        }
    }
}

#[async_trait::async_trait]
impl<S: SessionStore> pingora::services::background::BackgroundService for UsersWatcher<S> {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        if self.login.users_file().is_none() {
            return;
        }
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler; the users file is still polled");
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.reload(false).await,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!(target: "auth", "SIGHUP: reloading the users file");
                    self.reload(true).await;
                }
            }
        }
    }
}
