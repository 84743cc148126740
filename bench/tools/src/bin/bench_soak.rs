//! The soak's load (`bench/soak.sh`): a fixed request rate with a mix of
//! logins, logouts, protected, public and anonymous requests, for a while,
//! with errors and latency reported per interval.
//!
//! ```text
//! bench_soak <host:port> <cookies-file> --seconds 600 --rate 4000 [--conns 32]
//!            [--interval 60] [--password user:pass]
//! ```
//!
//! `conns` threads each keep one keep-alive connection and send on a fixed
//! schedule (rate / conns per second each). Latency is measured from the time
//! a request was *due*, not sent, so a stall shows up in the p99 instead of
//! silently lowering the rate (coordinated omission). Every 20 requests of a
//! thread are:
//!
//! | share | request | expected |
//! |---|---|---|
//! | 10 | `GET /app` with a cookie from the file (the live sessions) | 200 |
//! | 4 | `GET /public/x`, no cookie | 200 |
//! | 2 | `GET /app`, no cookie | 401 |
//! | 2 | `GET /mint`: the backend logs a new user in | 200 and a new cookie |
//! | 2 | `POST /.sessiongate/logout` with one of those new cookies | 303 |
//!
//! so the number of live sessions stays where it started. With `--password`,
//! one more thread, on a connection of its own, logs in with the built-in
//! login once a second (argon2id is slow on purpose; more would measure the
//! hash). It is not one of the `conns` schedules: a login takes tens of
//! milliseconds by design, and a scheduled thread waiting on it made its next
//! requests late, which counted as latency of the proxy. Its latency is
//! reported apart (`password_login_max_ms`), not in the percentiles: it is
//! the hash's. One JSON line per interval on stdout; exits 1 if any request
//! failed.

use sessiongate_bench::read_response;
use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    cookies: Vec<String>,
    seconds: u64,
    rate: f64,
    conns: usize,
    interval: u64,
    password: Option<(String, String)>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_soak <host:port> <cookies-file> --seconds N --rate R [--conns 32] [--interval 60] [--password user:pass]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let addr = it.next().unwrap_or_else(|| usage());
    let file = it.next().unwrap_or_else(|| usage());
    let cookies: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| {
            eprintln!("bench_soak: {file}: {e}");
            std::process::exit(2)
        })
        .lines()
        .map(str::to_owned)
        .collect();
    let mut a = Args {
        addr,
        cookies,
        seconds: 0,
        rate: 0.0,
        conns: 32,
        interval: 60,
        password: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let num = || value.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--seconds" => a.seconds = num() as u64,
            "--rate" => a.rate = num(),
            "--conns" => a.conns = num() as usize,
            "--interval" => a.interval = num() as u64,
            "--password" => {
                let (u, p) = value.split_once(':').unwrap_or_else(|| usage());
                a.password = Some((u.to_owned(), p.to_owned()));
            }
            _ => usage(),
        }
    }
    if a.seconds == 0 || a.rate <= 0.0 || a.conns == 0 || a.cookies.is_empty() {
        usage();
    }
    a
}

/// What one interval saw, all threads together.
#[derive(Default)]
struct Interval {
    latencies_us: Vec<u32>,
    errors: u64,
    samples: Vec<String>,
    /// protected, public, anonymous, login, logout, password login
    kinds: [u64; 6],
    /// The longest password login apart: its argon2id hash is its latency,
    /// and it runs at idle CPU priority, behind every proxied request.
    password_max_us: u32,
}

#[derive(Clone, Copy)]
enum Kind {
    Protected,
    Public,
    Anonymous,
    Login,
    Logout,
    Password,
}

struct Conn {
    addr: String,
    io: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Conn {
    /// Send `req`; `(status, new cookie)`. Reconnects once if the kept-alive
    /// connection was closed under it.
    fn send(&mut self, req: &str) -> std::io::Result<(u16, Option<String>)> {
        for attempt in 0..2 {
            if self.io.is_none() {
                let s = TcpStream::connect(&self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                self.io = Some((s.try_clone()?, BufReader::new(s)));
            }
            let (w, r) = self.io.as_mut().expect("connected above");
            match w
                .write_all(req.as_bytes())
                .and_then(|()| read_response(r, "sid"))
            {
                Ok(resp) => return Ok((resp.status, resp.cookie)),
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => self.io = None,
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

fn get(path: &str, cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench_soak\r\n{cookie}\r\n")
}

fn post(path: &str, cookie: Option<&str>, body: &str) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nOrigin: http://bench\r\nUser-Agent: bench_soak\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{cookie}\r\n{body}",
        body.len()
    )
}

/// One thread's run: its own stats per interval (no lock per request).
fn worker(id: usize, args: &Args, start: Instant) -> Vec<Interval> {
    let end = start + Duration::from_secs(args.seconds);
    let intervals = args.seconds.div_ceil(args.interval) as usize;
    let mut stats: Vec<Interval> = (0..intervals).map(|_| Interval::default()).collect();
    let mut conn = Conn {
        addr: args.addr.clone(),
        io: None,
    };
    let mut own: VecDeque<String> = VecDeque::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1);
    // The password thread (id == conns) sends one login a second.
    let password = id == args.conns;
    let gap = if password {
        Duration::from_secs(1)
    } else {
        Duration::from_secs_f64(args.conns as f64 / args.rate)
    };
    // Spread the threads' schedules over one gap.
    let mut due = Instant::now() + gap.mul_f64(id as f64 / args.conns as f64);
    let mut k = 0u64;
    // Stop at the end of the run even when behind schedule (a peak run is).
    while due < end && Instant::now() < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let kind = if password {
            Kind::Password
        } else {
            k += 1;
            match k % 20 {
                0..=9 => Kind::Protected,
                10..=13 => Kind::Public,
                14 | 15 => Kind::Anonymous,
                16 | 17 => Kind::Login,
                _ if own.is_empty() => Kind::Protected,
                _ => Kind::Logout,
            }
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let pooled = &args.cookies[(rng % args.cookies.len() as u64) as usize];
        let logout_cookie = matches!(kind, Kind::Logout)
            .then(|| own.pop_front())
            .flatten();
        let (req, want) = match kind {
            Kind::Protected => (get("/app", Some(pooled)), 200),
            Kind::Public => (get("/public/x", None), 200),
            Kind::Anonymous => (get("/app", None), 401),
            Kind::Login => (get("/mint", None), 200),
            Kind::Logout => (
                post("/.sessiongate/logout", logout_cookie.as_deref(), ""),
                303,
            ),
            Kind::Password => {
                let (u, p) = args.password.as_ref().expect("checked above");
                (
                    post(
                        "/.sessiongate/login",
                        None,
                        &format!("username={u}&password={p}&next=%2Fapp"),
                    ),
                    303,
                )
            }
        };
        let result = conn.send(&req);
        let took = due.elapsed();
        let failure = match (&result, kind) {
            (Ok((s, _)), _) if *s != want => Some(format!("{req:.40?}: status {s}, wanted {want}")),
            (Ok((_, None)), Kind::Login | Kind::Password) => Some("login without a cookie".into()),
            (Ok(_), _) => None,
            (Err(e), _) => Some(format!("{req:.40?}: {e}")),
        };
        if let Ok((_, Some(c))) = result {
            if matches!(kind, Kind::Login | Kind::Password) {
                own.push_back(c);
            }
        }
        let i = ((due - start).as_secs() / args.interval) as usize;
        let s = &mut stats[i.min(intervals - 1)];
        let took_us = took.as_micros().min(u32::MAX as u128) as u32;
        match kind {
            Kind::Password => s.password_max_us = s.password_max_us.max(took_us),
            _ => s.latencies_us.push(took_us),
        }
        s.kinds[kind as usize] += 1;
        if let Some(f) = failure {
            s.errors += 1;
            if s.samples.len() < 5 {
                s.samples.push(f);
            }
        }
        due += gap;
    }
    stats
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1e3
}

fn main() {
    let args = Arc::new(parse_args());
    let start = Instant::now();
    let threads = args.conns + usize::from(args.password.is_some());
    let workers: Vec<_> = (0..threads)
        .map(|id| {
            let args = args.clone();
            std::thread::spawn(move || worker(id, &args, start))
        })
        .collect();
    let mut merged: Vec<Interval> = Vec::new();
    for w in workers {
        for (i, s) in w.join().expect("a worker panicked").into_iter().enumerate() {
            if merged.len() <= i {
                merged.push(Interval::default());
            }
            let m = &mut merged[i];
            m.latencies_us.extend(s.latencies_us);
            m.password_max_us = m.password_max_us.max(s.password_max_us);
            m.errors += s.errors;
            m.samples.extend(s.samples);
            for (k, v) in m.kinds.iter_mut().zip(s.kinds) {
                *k += v;
            }
        }
    }
    let mut total_errors = 0;
    for (i, mut s) in merged.into_iter().enumerate() {
        let from = i as u64 * args.interval;
        let step = args.interval.min(args.seconds - from);
        s.latencies_us.sort_unstable();
        s.samples.truncate(5);
        total_errors += s.errors;
        let line = serde_json::json!({
            "t_s": from + step,
            "requests": s.latencies_us.len() as u64 + s.kinds[Kind::Password as usize],
            "rate": (s.latencies_us.len() as u64 + s.kinds[Kind::Password as usize]) as f64 / step as f64,
            "errors": s.errors,
            "error_samples": s.samples,
            "p50_ms": percentile(&s.latencies_us, 0.50),
            "p99_ms": percentile(&s.latencies_us, 0.99),
            "max_ms": percentile(&s.latencies_us, 1.0),
            "password_login_max_ms": f64::from(s.password_max_us) / 1e3,
            "kinds": {
                "protected": s.kinds[0], "public": s.kinds[1], "anonymous": s.kinds[2],
                "login": s.kinds[3], "logout": s.kinds[4], "password_login": s.kinds[5],
            },
        });
        println!("{line}");
    }
    std::process::exit(i32::from(total_errors > 0));
}
