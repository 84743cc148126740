//! What the process does on each signal (pingora's own handling, except
//! that SIGQUIT only hands the sockets over when an upgrade socket is set):
//!
//! | signal  | does                                                              |
//! |---------|-------------------------------------------------------------------|
//! | SIGINT  | exit at once (Ctrl-C); forced after `shutdown_timeout` + 2 s      |
//! | SIGTERM | stop accepting after `server.grace_period`, let requests finish   |
//! | SIGQUIT | with `server.upgrade_socket`: send the listening sockets to a new |
//! |         | process started with `--upgrade`, then stop as SIGTERM; without: |
//! |         | as SIGTERM                                                        |
//! | SIGHUP  | reload the config ([`super::reload`])                             |
//!
//! The forced exit on SIGINT is there because pingora 0.9's fast shutdown can
//! hang: it stops the runtimes without telling the accept loops, and an accept
//! loop polled after its runtime's IO driver is gone gets an error at once,
//! forever ("A Tokio 1.x context was found, but it is being shutdown"), so
//! that runtime never stops and the process spins at 100% CPU. Seen in the
//! upgrade test, about once in a few dozen runs.

use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

/// The shutdown signals pingora waits for.
pub(super) struct Signals {
    /// `server.upgrade_socket` is set: SIGQUIT is a handover.
    pub upgrade: bool,
    /// After SIGINT, the process exits by itself at the latest this long after.
    pub exit_within: Duration,
}

/// How much longer than `shutdown_timeout` a fast shutdown may take.
pub(super) const FAST_EXIT_SLACK: Duration = Duration::from_secs(2);

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        tokio::select! {
            _ = int.recv() => {
                let within = self.exit_within;
                std::thread::spawn(move || {
                    std::thread::sleep(within);
                    tracing::warn!(?within, "the runtimes did not stop after SIGINT; exiting anyway");
                    std::process::exit(0);
                });
                ShutdownSignal::FastShutdown
            }
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
