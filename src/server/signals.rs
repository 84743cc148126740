//! What the process does on each signal (pingora's own handling, except
//! that SIGQUIT only hands the sockets over when an upgrade socket is set):
//!
//! | signal  | does                                                              |
//! |---------|-------------------------------------------------------------------|
//! | SIGINT  | exit at once (Ctrl-C)                                             |
//! | SIGTERM | stop accepting after `server.grace_period`, let requests finish   |
//! | SIGQUIT | with `server.upgrade_socket`: send the listening sockets to a new |
//! |         | process started with `--upgrade`, then stop as SIGTERM; without: |
//! |         | as SIGTERM                                                        |
//! | SIGHUP  | reload the config ([`super::reload`])                             |

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

/// The shutdown signals pingora waits for.
pub struct Signals {
    /// `server.upgrade_socket` is set: SIGQUIT is a handover.
    pub upgrade: bool,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        tokio::select! {
            _ = int.recv() => ShutdownSignal::FastShutdown,
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = quit.recv() => {
                if self.upgrade {
                    ShutdownSignal::GracefulUpgrade
                } else {
                    tracing::warn!("SIGQUIT without server.upgrade_socket: stopping as for SIGTERM");
                    ShutdownSignal::GracefulTerminate
                }
            }
        }
    }
}
