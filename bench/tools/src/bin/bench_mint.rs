//! Mint many sessions fast, for the benchmark (`bench/run.sh`).
//!
//! ```text
//! bench_mint <host:port> <count> <out-file> [--path /mint] [--cookie sid] [--conns 64]
//! ```
//!
//! Sends `count` `GET <path>` requests over `conns` concurrent keep-alive
//! HTTP/1.1 connections (one thread each; std only) and writes the `name=value`
//! part of every `Set-Cookie` named `cookie` to `out-file`, one per line. Against
//! sessiongate the path is a route on an upstream with `session_commands = true`
//! whose backend answers `X-Session-Login: <user>`; against the express peer it is
//! its `/login`. Exits non-zero if any response lacks the cookie.

use sessiongate_bench::{read_response, Response};
use std::io::{BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    count: u64,
    out: String,
    path: String,
    cookie: String,
    conns: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_mint <host:port> <count> <out-file> [--path /mint] [--cookie sid] [--conns 64]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut a = Args {
        addr: String::new(),
        count: 0,
        out: String::new(),
        path: "/mint".into(),
        cookie: "sid".into(),
        conns: 64,
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--path" => a.path = it.next().unwrap_or_else(|| usage()),
            "--cookie" => a.cookie = it.next().unwrap_or_else(|| usage()),
            "--conns" => {
                a.conns = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ if arg.starts_with("--") => usage(),
            _ => positional.push(arg),
        }
    }
    let [addr, count, out] = <[String; 3]>::try_from(positional).unwrap_or_else(|_| usage());
    a.addr = addr;
    a.count = count.parse().unwrap_or_else(|_| usage());
    a.out = out;
    a.conns = a.conns.clamp(1, a.count.max(1));
    a
}

fn main() {
    let args = Arc::new(parse_args());
    let out = std::fs::File::create(&args.out).unwrap_or_else(|e| {
        eprintln!("bench_mint: {}: {e}", args.out);
        std::process::exit(1)
    });
    let out = Arc::new(Mutex::new(BufWriter::new(out)));
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bench_mint\r\n\r\n",
        args.path, args.addr
    );

    let workers: Vec<_> = (0..args.conns)
        .map(|_| {
            let (args, out, next, failed) =
                (args.clone(), out.clone(), next.clone(), failed.clone());
            let request = request.clone();
            std::thread::spawn(move || {
                let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                let mut mine = Vec::with_capacity(1024);
                while next.fetch_add(1, Ordering::Relaxed) < args.count {
                    let mut attempt = 0;
                    let cookie = loop {
                        attempt += 1;
                        let result = (|| -> std::io::Result<Response> {
                            if conn.is_none() {
                                let s = TcpStream::connect(&args.addr)?;
                                s.set_nodelay(true)?;
                                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                                conn = Some((s.try_clone()?, BufReader::new(s)));
                            }
                            let (w, r) = conn.as_mut().expect("connected above");
                            w.write_all(request.as_bytes())?;
                            read_response(r, &args.cookie)
                        })();
                        match result {
                            Ok(Response {
                                status,
                                cookie: Some(c),
                            }) if (200..300).contains(&status) => break Some(c),
                            Ok(Response { status, .. }) => {
                                eprintln!(
                                    "bench_mint: status {status} without a {} cookie",
                                    args.cookie
                                );
                                break None;
                            }
                            Err(e) => {
                                // A closed keep-alive connection: reconnect and retry once.
                                conn = None;
                                if attempt >= 3 {
                                    eprintln!("bench_mint: {e}");
                                    break None;
                                }
                            }
                        }
                    };
                    match cookie {
                        Some(c) => {
                            mine.push(c);
                            if mine.len() == mine.capacity() {
                                flush(&out, &mut mine);
                            }
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                flush(&out, &mut mine);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    out.lock()
        .expect("writer")
        .flush()
        .expect("write the cookie file");
    let failed = failed.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let made = args.count - failed.min(args.count);
    eprintln!(
        "bench_mint: {made} sessions in {secs:.1}s ({:.0}/s) over {} connections",
        made as f64 / secs,
        args.conns
    );
    if failed > 0 {
        eprintln!("bench_mint: {failed} requests did not yield a cookie");
        std::process::exit(1);
    }
}

fn flush(out: &Mutex<BufWriter<std::fs::File>>, lines: &mut Vec<String>) {
    let mut out = out.lock().expect("writer");
    for l in lines.drain(..) {
        out.write_all(l.as_bytes()).expect("write the cookie file");
        out.write_all(b"\n").expect("write the cookie file");
    }
}
