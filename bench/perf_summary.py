#!/usr/bin/env python3
"""Summarise a `perf record -g` profile of sessiongate (bench/run.sh --perf).

    perf_summary.py PERF_DATA

Prints self time grouped by component (kernel, malloc, pingora, tokio, moka,
sessiongate's own code, ...) and the top symbols. Standard library only.
"""

import collections
import re
import subprocess
import sys

COMPONENTS = [
    ("pingora_proxy", "pingora (proxy)"),
    ("pingora_core", "pingora (core: HTTP/1, streams, pool)"),
    ("pingora_http", "pingora (headers)"),
    ("pingora_timeout", "pingora (timers)"),
    ("pingora_pool", "pingora (connection pool)"),
    ("pingora_load_balancing", "pingora (load balancer)"),
    ("pingora", "pingora (other)"),
    ("tokio", "tokio runtime"),
    ("mio", "tokio runtime"),
    ("moka", "moka (the memory store, Redis local cache, login throttle)"),
    ("crossbeam", "moka (the memory store, Redis local cache, login throttle)"),
    ("sha2", "sha2/hmac (cookie verify, session key)"),
    ("hmac", "sha2/hmac (cookie verify, session key)"),
    ("sessiongate::", "sessiongate's own code"),
    ("tracing", "tracing (logging)"),
    ("http::", "http crate (header maps)"),
    ("httparse", "httparse"),
    ("bytes::", "bytes"),
]


def main():
    out = subprocess.run(
        ["perf", "report", "-i", sys.argv[1], "--no-children", "--sort", "dso,symbol",
         "--stdio", "-g", "none"],
        capture_output=True, text=True, check=True,
    ).stdout
    agg = collections.Counter()
    top = []
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        pct, dso, kind = float(m.group(1)), m.group(2), m.group(3)
        sym = re.split(r"\s{2,}", m.group(4).strip())[0]
        top.append((pct, dso, sym))
        if kind == "k":
            key = "kernel (TCP on loopback, scheduler, syscalls)"
        elif "libc" in dso:
            if re.search(r"malloc|free|realloc|unlink_chunk|consolidate|tcache|arena", sym):
                key = "libc malloc/free"
            elif re.search(r"mem(cpy|move|set|cmp)", sym):
                key = "libc memcpy/memmove"
            else:
                key = "libc other"
        elif dso == "[vdso]":
            key = "vdso (clock_gettime)"
        elif re.match(r"_?mi_|mi_", sym) or "mimalloc" in sym:
            key = "allocator (mimalloc)"
        elif re.search(r"__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_", sym):
            key = "allocator (mimalloc)"
        else:
            key = next((name for pre, name in COMPONENTS if pre in sym), "other Rust code (std, alloc, core, ...)")
        agg[key] += pct
    print("### self time by component")
    print()
    print("| share | component |")
    print("|---:|---|")
    for k, v in agg.most_common():
        if v >= 0.1:
            print(f"| {v:5.1f}% | {k} |")
    print()
    print("### top symbols (self time)")
    print()
    print("| share | object | symbol |")
    print("|---:|---|---|")
    for pct, dso, sym in sorted(top, reverse=True)[:30]:
        sym = sym if len(sym) <= 110 else sym[:107] + "..."
        print(f"| {pct:5.2f}% | {dso} | `{sym.replace('|', '/')}` |")


if __name__ == "__main__":
    main()
