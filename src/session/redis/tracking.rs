//! The Redis store's invalidation-tracking connection: one raw RESP2 connection
//! per instance that turns on broadcast tracking redirected to itself
//! (`CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX <prefix>sess:`), subscribes
//! to `__redis__:invalidate`, and reports every invalidation to its caller. A
//! `PING` every 200 ms (`HEARTBEAT`) proves the connection alive; a missed
//! answer ends it.
//!
//! It holds the minimal RESP2 writer and reader that connection needs, nothing
//! more. It does not own the local cache, decide what an invalidation does, or
//! reconnect: [`RedisStore::watch`](crate::session::redis::RedisStore::watch) does
//! those, through the callbacks of [`run`].

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::session::SessionKey;

/// How often the invalidation connection proves it is alive.
const HEARTBEAT: Duration = Duration::from_millis(200);

/// What one invalidation message said.
#[derive(Debug)]
pub enum Invalidated {
    /// These keys changed, in message order; `None` for a key under the prefix
    /// that is not a session key (the caller should then trust nothing).
    Keys(Vec<Option<SessionKey>>),
    /// The whole database was flushed.
    All,
}

/// One tracking connection's life (RESP2: `CLIENT TRACKING … REDIRECT` to
/// itself, then `SUBSCRIBE __redis__:invalidate`).
///
/// Connects to `info`'s address (authenticating as it says), tracks every key
/// under `key_prefix`, calls `on_ready` once tracking is on, then
/// `on_invalidate` for every invalidation message, until the connection
/// fails; it never returns `Ok`.
///
/// # Errors
/// A non-TCP address, a connect or answer slower than `deadline`, an
/// unexpected answer, a dropped connection or a missed heartbeat.
pub async fn run(
    info: &redis::ConnectionInfo,
    key_prefix: &str,
    deadline: Duration,
    on_ready: impl Fn(),
    on_invalidate: impl Fn(Invalidated),
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let addr = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("unsupported Redis address {other:?}"),
            ))
        }
    };
    let stream = tokio::time::timeout(deadline, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| Error::new(ErrorKind::TimedOut, "connect"))??;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let ask = |args: Vec<String>| resp_command(&args);
    if let (Some(user), Some(pass)) = (
        info.redis_settings().username(),
        info.redis_settings().password(),
    ) {
        write
            .write_all(&ask(vec!["AUTH".into(), user.into(), pass.into()]))
            .await?;
        expect_ok(&mut read, deadline).await?;
    } else if let Some(pass) = info.redis_settings().password() {
        write
            .write_all(&ask(vec!["AUTH".into(), pass.into()]))
            .await?;
        expect_ok(&mut read, deadline).await?;
    }
    write
        .write_all(&ask(vec!["CLIENT".into(), "ID".into()]))
        .await?;
    let id = match read_value(&mut read, deadline).await? {
        Resp::Int(id) => id,
        other => return Err(Error::other(format!("CLIENT ID answered {other:?}"))),
    };
    write
        .write_all(&ask(vec![
            "CLIENT".into(),
            "TRACKING".into(),
            "ON".into(),
            "REDIRECT".into(),
            id.to_string(),
            "BCAST".into(),
            "PREFIX".into(),
            key_prefix.into(),
        ]))
        .await?;
    expect_ok(&mut read, deadline).await?;
    write
        .write_all(&ask(vec![
            "SUBSCRIBE".into(),
            "__redis__:invalidate".into(),
        ]))
        .await?;
    read_value(&mut read, deadline).await?;
    on_ready();
    tracing::info!("Redis invalidation tracking on");
    // From here on, reading has a task of its own: a half-read RESP value must
    // never be dropped because the heartbeat tick won a `select!` (its bytes
    // would be lost and an invalidation silently skipped). The task parses
    // whole values and hands them over a channel, whose `recv` is cancel-safe;
    // it ends when the socket ends or fails (after sending the error), and is
    // aborted when this function returns.
    let (values, mut received) = tokio::sync::mpsc::channel(READ_AHEAD);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        loop {
            let value = read_resp(&mut read).await;
            let failed = value.is_err();
            if values.send(value).await.is_err() || failed {
                return;
            }
        }
    }));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    // After a stall, wait a whole beat again rather than firing the missed
    // ticks back to back (which would report a pong as missed before it could
    // arrive).
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    loop {
        tokio::select! {
            // What has arrived is handled before a tick can call a pong missed.
            biased;
            v = received.recv() => {
                let v = v.ok_or_else(|| Error::new(ErrorKind::UnexpectedEof, "Redis reader ended"))??;
                match v {
                    Resp::Array(items) if matches!(items.first(), Some(Resp::Bulk(Some(b))) if b.eq_ignore_ascii_case(b"pong")) => {
                        awaiting_pong = false;
                    }
                    Resp::Array(items) if matches!(items.first(), Some(Resp::Bulk(Some(b))) if b == b"message") => {
                        match items.get(2) {
                            Some(Resp::Array(keys)) => {
                                let keys = keys.iter().filter_map(|k| match k {
                                    Resp::Bulk(Some(name)) => {
                                        let hex = name.strip_prefix(key_prefix.as_bytes()).and_then(|h| std::str::from_utf8(h).ok());
                                        Some(hex.and_then(SessionKey::from_hex))
                                    }
                                    _ => None,
                                });
                                on_invalidate(Invalidated::Keys(keys.collect()));
                            }
                            // A null list: the whole database was flushed.
                            _ => on_invalidate(Invalidated::All),
                        }
                    }
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                if awaiting_pong {
                    return Err(Error::new(ErrorKind::TimedOut, "heartbeat missed"));
                }
                write.write_all(&ask(vec!["PING".into()])).await?;
                awaiting_pong = true;
            }
        }
    }
}

/// How many parsed values the reader task may hold before it stops reading
/// the socket (back-pressure instead of unbounded memory).
const READ_AHEAD: usize = 256;

/// Aborts the reader task when [`run`] returns or is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A RESP2 value, as much as the invalidation connection needs.
#[derive(Debug)]
enum Resp {
    Simple(String),
    #[allow(dead_code)] // shown through Debug in error messages
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
    Nil,
}

fn resp_command(args: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn expect_ok<R: AsyncBufReadExt + Unpin + Send>(
    r: &mut R,
    deadline: Duration,
) -> std::io::Result<()> {
    match read_value(r, deadline).await? {
        Resp::Simple(s) if s == "OK" => Ok(()),
        other => Err(std::io::Error::other(format!("Redis answered {other:?}"))),
    }
}

async fn read_value<R: AsyncBufReadExt + Unpin + Send>(
    r: &mut R,
    deadline: Duration,
) -> std::io::Result<Resp> {
    tokio::time::timeout(deadline, read_resp(r))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer"))?
}

fn read_resp<'a, R: AsyncBufReadExt + Unpin + Send + 'a>(
    r: &'a mut R,
) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Resp>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(1.min(line.len()));
        let num = || rest.parse::<i64>().map_err(std::io::Error::other);
        Ok(match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => Resp::Error(rest.to_owned()),
            ":" => Resp::Int(num()?),
            "$" => {
                let n = num()?;
                if n < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    tokio::io::AsyncReadExt::read_exact(r, &mut buf).await?;
                    buf.truncate(n as usize);
                    Resp::Bulk(Some(buf))
                }
            }
            "*" => {
                let n = num()?;
                if n < 0 {
                    Resp::Nil
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(read_resp(r).await?);
                    }
                    Resp::Array(items)
                }
            }
            _ => {
                return Err(std::io::Error::other(format!(
                    "unexpected RESP line {line:?}"
                )))
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake Redis that completes the tracking handshake and answers every
    /// `PING`; after the second one it sends an invalidation in two halves, the
    /// cut inside the key and the gap spanning a heartbeat tick. With
    /// `close_after_handshake`, it hangs up after `SUBSCRIBE` instead.
    async fn fake_redis(key: String, close_after_handshake: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut pings = 0;
            while let Ok(Resp::Array(args)) = read_resp(&mut read).await {
                let word = |i: usize| match args.get(i) {
                    Some(Resp::Bulk(Some(b))) => String::from_utf8_lossy(b).to_uppercase(),
                    _ => String::new(),
                };
                match (word(0).as_str(), word(1).as_str()) {
                    ("CLIENT", "ID") => write.write_all(b":7\r\n").await.unwrap(),
                    ("CLIENT", "TRACKING") => write.write_all(b"+OK\r\n").await.unwrap(),
                    ("SUBSCRIBE", _) => {
                        write
                            .write_all(
                                b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
                            )
                            .await
                            .unwrap();
                        if close_after_handshake {
                            return;
                        }
                    }
                    ("PING", _) => {
                        write
                            .write_all(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
                            .await
                            .unwrap();
                        pings += 1;
                        if pings == 2 {
                            let message = format!(
                                "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n${}\r\n{key}\r\n",
                                key.len()
                            );
                            let (first, second) = message.split_at(message.len() - 20);
                            write.write_all(first.as_bytes()).await.unwrap();
                            // The next PING (and tick) comes 200 ms after this
                            // one; it is answered right after the second half,
                            // well within its beat.
                            tokio::time::sleep(HEARTBEAT + HEARTBEAT / 2).await;
                            write.write_all(second.as_bytes()).await.unwrap();
                        }
                    }
                    _ => return,
                }
            }
        });
        format!("redis://{addr}/")
    }

    #[tokio::test]
    async fn an_invalidation_split_across_a_heartbeat_tick_is_not_lost() {
        let key = SessionKey::of(&crate::session::signing::SessionId::generate());
        let url = fake_redis(format!("p:sess:{}", key.to_hex()), false).await;
        let client = redis::Client::open(url).unwrap();
        let (seen, mut invalidations) = tokio::sync::mpsc::unbounded_channel();
        let tracking = run(
            client.get_connection_info(),
            "p:sess:",
            Duration::from_secs(1),
            || {},
            |i| {
                let _ = seen.send(i);
            },
        );
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            tokio::select! {
                result = tracking => panic!("tracking ended: {result:?}"),
                got = invalidations.recv() => got,
            }
        })
        .await
        .expect("no invalidation within 3 s");
        match got {
            Some(Invalidated::Keys(keys)) => assert_eq!(keys, vec![Some(key)]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_closed_connection_ends_tracking_with_an_error() {
        let url = fake_redis(String::new(), true).await;
        let client = redis::Client::open(url).unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(3),
            run(
                client.get_connection_info(),
                "p:sess:",
                Duration::from_secs(1),
                || {},
                |_| {},
            ),
        )
        .await
        .expect("tracking outlived its connection");
        assert!(result.is_err());
    }
}
