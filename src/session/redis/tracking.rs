//! The Redis store's invalidation-tracking connection: one RESP3 connection
//! per instance (redis-rs, with a push sender) that turns on broadcast
//! tracking (`CLIENT TRACKING ON BCAST PREFIX <prefix>sess:`) and reports every
//! invalidation Redis pushes on it to its caller. A `PING` every 200 ms
//! (`HEARTBEAT`) that must be answered within the beat proves the connection
//! alive; a missed answer, or redis-rs reporting the connection gone, ends it.
//!
//! RESP3 carries the invalidations as push messages on the tracking
//! connection itself, so there is no `REDIRECT` to a second connection and no
//! `SUBSCRIBE`. Needs Redis 6 or later (or Valkey).
//!
//! It does not own the local cache, decide what an invalidation does, or
//! reconnect: [`RedisStore::watch`](crate::session::redis::RedisStore::watch) does
//! those, through the callbacks of [`run`].

use std::io::{Error, ErrorKind};
use std::time::Duration;

use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};

use crate::session::SessionKey;

/// How often the invalidation connection proves it is alive.
const HEARTBEAT: Duration = Duration::from_millis(200);

/// What one invalidation message said.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Invalidated {
    /// These keys changed, in message order; `None` for a key under the prefix
    /// that is not a session key (the caller should then trust nothing).
    Keys(Vec<Option<SessionKey>>),
    /// The whole database was flushed.
    All,
}

/// One tracking connection's life.
///
/// Connects to `info`'s server over RESP3 (authenticating as it says), tracks
/// every key under `key_prefix`, calls `on_ready` once tracking is on, then
/// `on_invalidate` for every invalidation, until the connection fails; it
/// never returns `Ok`.
///
/// # Errors
/// A connect or answer slower than `deadline`, a refused command, a dropped
/// connection or a missed heartbeat.
pub(super) async fn run(
    info: &redis::ConnectionInfo,
    key_prefix: &str,
    deadline: Duration,
    on_ready: impl Fn(),
    on_invalidate: impl Fn(Invalidated),
) -> std::io::Result<()> {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.clone().set_redis_settings(settings)).map_err(other)?;
    let (pushes, mut pushed) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(deadline))
        .set_response_timeout(Some(deadline))
        .set_push_sender(pushes);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(other)?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(key_prefix)
        .query_async::<()>(&mut conn)
        .await
        .map_err(other)?;
    on_ready();
    tracing::info!("Redis invalidation tracking on");
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    // After a stall, wait a whole beat again rather than firing the missed
    // ticks back to back.
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // What has arrived is handled before the next heartbeat.
            biased;
            push = pushed.recv() => {
                let push = push.ok_or_else(|| Error::new(ErrorKind::UnexpectedEof, "Redis connection closed"))?;
                match push.kind {
                    PushKind::Invalidate => on_invalidate(invalidated(&push.data, key_prefix)),
                    PushKind::Disconnection => {
                        return Err(Error::new(ErrorKind::ConnectionReset, "Redis connection closed"));
                    }
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                // Pushes keep queueing in the channel meanwhile: none is lost.
                let pong = tokio::time::timeout(
                    HEARTBEAT,
                    redis::cmd("PING").query_async::<String>(&mut conn),
                )
                .await;
                match pong {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(other(e)),
                    Err(_) => return Err(Error::new(ErrorKind::TimedOut, "heartbeat missed")),
                }
            }
        }
    }
}

fn other(e: redis::RedisError) -> Error {
    Error::other(e.to_string())
}

/// An `invalidate` push's data: the list of keys, or null for a flush.
fn invalidated(data: &[Value], key_prefix: &str) -> Invalidated {
    let Some(Value::Array(keys)) = data.first() else {
        return Invalidated::All;
    };
    let key = |v: &Value| match v {
        Value::BulkString(name) => name
            .strip_prefix(key_prefix.as_bytes())
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(SessionKey::from_hex),
        _ => None,
    };
    Invalidated::Keys(keys.iter().map(key).collect())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use crate::session::signing::SessionId;

    /// A throwaway redis-server on an ephemeral port, killed on drop.
    pub(in crate::session::redis) struct Server {
        port: u16,
        child: Child,
    }

    impl Server {
        pub(in crate::session::redis) fn start() -> Server {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(std::env::temp_dir())
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (apt-get install -y redis-server, or ./test.sh)");
            let server = Server { port, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        pub(in crate::session::redis) fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.port)
        }

        fn signal(&self, sig: &str) {
            let pid = self.child.id().to_string();
            assert!(Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success());
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Run tracking against `server`; the invalidations it reports, and a
    /// signal once it is on.
    fn track(
        server: &Server,
    ) -> (
        impl std::future::Future<Output = std::io::Result<()>>,
        tokio::sync::mpsc::UnboundedReceiver<Invalidated>,
        tokio::sync::oneshot::Receiver<()>,
    ) {
        let client = redis::Client::open(server.url()).unwrap();
        let (seen, invalidations) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let ready_tx = std::sync::Mutex::new(Some(ready_tx));
        let info = client.get_connection_info().clone();
        let tracking = async move {
            run(
                &info,
                "p:sess:",
                Duration::from_secs(1),
                || {
                    if let Some(tx) = ready_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                },
                |i| {
                    let _ = seen.send(i);
                },
            )
            .await
        };
        (tracking, invalidations, ready)
    }

    #[tokio::test]
    async fn changed_session_keys_and_flushes_are_reported() {
        let server = Server::start();
        let (tracking, mut invalidations, ready) = track(&server);
        let key = SessionKey::of(&SessionId::generate());
        let writer = async {
            ready.await.unwrap();
            let client = redis::Client::open(server.url()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let name = format!("p:sess:{}", key.to_hex());
            let _: () = redis::cmd("SET")
                .arg(&name)
                .arg("x")
                .query_async(&mut c)
                .await
                .unwrap();
            let first = invalidations.recv().await;
            let _: () = redis::cmd("SET")
                .arg("other:key")
                .arg("x")
                .query_async(&mut c)
                .await
                .unwrap();
            let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
            (first, invalidations.recv().await)
        };
        let (first, second) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                result = tracking => panic!("tracking ended: {result:?}"),
                got = writer => got,
            }
        })
        .await
        .expect("no invalidations within 5 s");
        assert_eq!(first, Some(Invalidated::Keys(vec![Some(key)])));
        // A key outside the prefix is not tracked; the flush is.
        assert_eq!(second, Some(Invalidated::All));
    }

    /// Start tracking, wait until it is on, do `act` to the server, and return
    /// how tracking ended and how long after `act` it did (at most 5 s).
    async fn end_of_tracking_after(
        server: &mut Server,
        act: impl FnOnce(&mut Server),
    ) -> (std::io::Result<()>, Duration) {
        let (tracking, _invalidations, ready) = track(server);
        tokio::pin!(tracking);
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                result = &mut tracking => panic!("tracking ended early: {result:?}"),
                _ = ready => {}
            }
            act(server);
            let acted = Instant::now();
            let result = tracking.await;
            (result, acted.elapsed())
        })
        .await
        .expect("tracking outlived what was done to its server")
    }

    #[tokio::test]
    async fn a_paused_server_misses_the_heartbeat_and_ends_tracking() {
        let mut server = Server::start();
        let (result, took) = end_of_tracking_after(&mut server, |s| s.signal("-STOP")).await;
        assert!(result.is_err());
        // One beat to send the PING and one to give up on its answer (400 ms);
        // well before the connection's own 1 s response deadline could.
        assert!(
            took < Duration::from_secs(1),
            "heartbeat missed only after {took:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_connection_ends_tracking_with_an_error() {
        let mut server = Server::start();
        let (result, _) = end_of_tracking_after(&mut server, |s| {
            let _ = s.child.kill();
            let _ = s.child.wait();
        })
        .await;
        assert!(result.is_err());
    }
}
