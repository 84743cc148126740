//! Where a live session's bytes go, for the benchmark (`bench/run.sh`).
//!
//! ```text
//! bench_memory <count> <distinct|shared|one|anonymous>
//! ```
//!
//! Fills a `MemoryStore` (the one the proxy uses) with `count` sessions shaped
//! like the ones `bench/run.sh` mints through the proxy (user `u<32 hex>`, roles
//! none, user agent and client IP recorded) and prints one JSON line with this
//! process's RSS before and after and the bytes per session:
//!
//! - `distinct`: every session has its own user (as in the proxy benchmark);
//! - `shared`: 100 sessions per user (`count / 100` users);
//! - `one`: every session belongs to the same user (the per-user index then
//!   holds one entry with `count` sessions; `max_per_user` is lifted for it);
//! - `anonymous`: no user at all (no per-user index entry: the store's slot + the session).

use std::future::Future;

use futures::FutureExt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::Map;
use sessiongate::{
    now_ms, MemoryOptions, MemoryStore, Session, SessionId, SessionKey, SessionStore,
};

fn block<F: Future>(f: F) -> F::Output {
    // The memory store's futures are always ready: never wait for one.
    f.now_or_never()
        .expect("the memory store's futures are always ready")
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(mode)) = (args.next().and_then(|n| n.parse::<u64>().ok()), args.next())
    else {
        eprintln!("usage: bench_memory <count> <distinct|shared|one|anonymous>");
        std::process::exit(2)
    };
    if !matches!(mode.as_str(), "distinct" | "shared" | "one" | "anonymous") {
        eprintln!("bench_memory: mode must be distinct, shared, one or anonymous");
        std::process::exit(2)
    }
    // Capacity as in the benchmark's proxy config.
    let store = MemoryStore::new(MemoryOptions {
        capacity: 1_100_000.max(count + count / 10),
        anonymous_capacity: 1_100_000.max(count + count / 10),
        idle_timeout: Duration::from_secs(4 * 3600),
        max_per_user: usize::MAX,
    });
    let rss_0 = rss_bytes();
    let start = Instant::now();
    let now = now_ms();
    let mut user_id = [0u8; 16];
    for i in 0..count {
        let id = SessionId::generate();
        let user = match mode.as_str() {
            "distinct" => {
                // 32 hex digits, like nginx's $request_id in the proxy benchmark.
                user_id[..8].copy_from_slice(&i.to_le_bytes());
                Some(format!("u{}", hex::encode(user_id)))
            }
            "shared" => {
                user_id[..8].copy_from_slice(&(i / 100).to_le_bytes());
                Some(format!("u{}", hex::encode(user_id)))
            }
            "one" => Some("u00000000000000000000000000000000".to_owned()),
            _ => None,
        };
        let s = Session::new(
            SessionKey::of(&id),
            user,
            Vec::new(),
            Map::new(),
            now,
            now + 12 * 3600 * 1000,
            Duration::from_secs(4 * 3600),
        )
        .with_client(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some("bench_mint"));
        block(store.create(s)).expect("memory store cannot fail");
    }
    store.sync();
    let secs = start.elapsed().as_secs_f64();
    let rss_n = rss_bytes();
    println!(
        "{{\"mode\":\"{mode}\",\"count\":{count},\"entries\":{},\"rss_0\":{rss_0},\"rss_n\":{rss_n},\"bytes_per_session\":{:.1},\"inserts_per_s\":{:.0}}}",
        store.len(),
        (rss_n.saturating_sub(rss_0)) as f64 / count.max(1) as f64,
        count as f64 / secs
    );
}
