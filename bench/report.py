#!/usr/bin/env python3
"""Turn the facts gathered by bench/run.sh into a table, report.md and plot.svg.

    report.py FACTS.jsonl ENV.txt RESULTS_DIR   write RESULTS_DIR/report.md and plot.svg,
                                                print the table
    report.py --check FACTS.jsonl               exit 1 unless every scenario produced
                                                numbers with the expected status
    report.py --ab FACTS.jsonl A B              the A/B table of `run.sh --ab` (markdown)
    report.py --credentials FACTS.jsonl ENV     cookie against Basic (`run.sh --credentials`)
    report.py --tls FACTS.jsonl ENV.txt         the TLS table of `run.sh --tls` (markdown)

Standard library only.
"""

import html
import json
import statistics
import os
import sys
import time

PROXY = "nginx-proxy"
EXPRESS = "express"
PROTECTED = ("sg-protected-small", "sg-protected-large")
TARGETS = {
    "throughput": 1.0,  # protected req/s >= 1.0 x nginx proxy
    "p99": 1.2,  # protected p99 <= 1.2 x nginx proxy
    "express": 12.0,  # protected req/s >= 12 x express
    "bytes_per_session": 300,  # at SESSIONS_LARGE
    "verify_lookup_ns": 2000,  # criterion hot_path/verify+load
}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def rps(run):
    return run["requests"] / (run["duration_us"] / 1e6)


def socket_errors(run):
    return run["err_connect"] + run["err_read"] + run["err_write"] + run["err_timeout"]


def summarise(s):
    """The median run by req/s, and every run's req/s."""
    runs = sorted(s["runs"], key=rps)
    med = runs[len(runs) // 2]
    secs = med["duration_us"] / 1e6
    return {
        "id": s["id"],
        "title": s["title"],
        "expect": s["expect"],
        "rps": rps(med),
        "p50": med["p50_us"] / 1e3,
        "p90": med["p90_us"] / 1e3,
        "p99": med["p99_us"] / 1e3,
        "all_rps": [rps(r) for r in s["runs"]],
        "proxy_cores": med.get("proxy_cpu_s", 0) / secs,
        "proxy_us": med.get("proxy_cpu_s", 0) / max(1, med["requests"]) * 1e6,
        "proxy_user_us": med.get("proxy_user_s", 0) / max(1, med["requests"]) * 1e6,
        "proxy_sys_us": med.get("proxy_sys_s", 0) / max(1, med["requests"]) * 1e6,
        "has_split": "proxy_user_s" in med,
        "backend_us": med.get("backend_cpu_s", 0) / max(1, med["requests"]) * 1e6,
        "other_cores": max(0.0, med.get("other_cpu_s", 0) / secs),
        "max_other_cores": max(max(0.0, r.get("other_cpu_s", 0)) / (r["duration_us"] / 1e6) for r in s["runs"]),
        "experiment": s["id"].endswith(("-threads1", "-jemalloc", "-nosteal", "-steal")),
        "discarded": s.get("discarded", 0),
        "requests": sum(r["requests"] for r in s["runs"]),
        "status_errors": sum(r["err_status"] for r in s["runs"]),
        "socket_errors": sum(socket_errors(r) for r in s["runs"]),
    }


def problems(rows):
    out = []
    for r in rows:
        if r["requests"] == 0 or r["rps"] <= 0:
            out.append(f"{r['id']}: no requests completed")
            continue
        if r["expect"] < 400 and r["status_errors"]:
            out.append(f"{r['id']}: {r['status_errors']} responses with status >= 400")
        if r["expect"] >= 400 and r["status_errors"] != r["requests"]:
            out.append(
                f"{r['id']}: {r['requests'] - r['status_errors']} responses were not {r['expect']}"
            )
        if r["socket_errors"]:
            out.append(f"{r['id']}: {r['socket_errors']} socket errors (connect/read/write/timeout)")
    return out


def noise(rows):
    return [
        f"{r['id']}: other processes used up to {r['max_other_cores']:.2f} cores during a run (noisy machine)"
        for r in rows
        if r.get("max_other_cores", 0) > 0.15
    ]


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def ok(flag):
    return "**yes**" if flag else "**no**"


def svg_chart(rows, title):
    """A horizontal bar chart of req/s per scenario."""
    # ~7 px per character of a 13 px sans-serif label, so long titles are not cut.
    label_w = max(300, int(7 * max(len(r["title"]) for r in rows)) + 16)
    bar_w, row_h, top = 420, 30, 50
    width = label_w + bar_w + 110
    height = top + row_h * len(rows) + 40
    peak = max(r["rps"] for r in rows) or 1
    colour = {
        "sg-protected-small-threads1": "#90caf9",
        "sg-protected-small-nosteal": "#90caf9",
        "sg-protected-small-steal": "#90caf9",
        "direct": "#9e9e9e",
        PROXY: "#4caf50",
        EXPRESS: "#e57373",
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="28" text-anchor="middle" font-size="16" '
        f'font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, r in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, bar_w * r["rps"] / peak)
        fill = colour.get(r["id"], "#1e88e5")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 19}" text-anchor="end">'
            f"{html.escape(r['title'])}</text>"
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" fill="{fill}"/>'
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 19}">{r["rps"]:,.0f}</text>'
        )
    base = top + row_h * len(rows) + 22
    parts.append(
        f'<text x="{label_w}" y="{base}" fill="#555">requests per second '
        f"(median run; higher is better)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def ab_report(facts, a, baseline):
    """Per pair: CPU per request of a and b on each route; then the ratios of
    the medians (a / b) and the protected route against the public one."""
    rows = {f["id"]: summarise(f) for f in facts if f["kind"] == "scenario"}
    bad = problems(list(rows.values()))
    pairs = sorted({int(i.rsplit("-", 1)[1]) for i in rows})
    out = [
        "# A/B of two sessiongate gates",
        "",
        f"a: `{a}`; b: `{baseline}`. Both gates ran side by side with the same sessions count;",
        "every pair measured both, the order swapped each pair. Proxy CPU µs per request",
        "(user + kernel, from /proc), and req/s.",
        "",
        "| pair | a protected | b protected | a public | b public |",
        "|---:|---:|---:|---:|---:|",
    ]
    med = {}
    for p in pairs:
        cells = []
        for side, route in (("a", "protected"), ("b", "protected"), ("a", "public"), ("b", "public")):
            r = rows[f"ab-{side}-{route}-{p}"]
            med.setdefault((side, route), []).append(r)
            cells.append(f"{r['proxy_us']:.1f} µs, {r['rps']:,.0f}/s")
        out.append(f"| {p} | " + " | ".join(cells) + " |")

    def median(side, route, key):
        return statistics.median(r[key] for r in med[(side, route)])

    us = {k: median(*k, "proxy_us") for k in med}
    out += [
        "",
        "Medians over the pairs:",
        "",
        f"- protected, a ÷ b CPU per request: **{us[('a', 'protected')] / us[('b', 'protected')]:.3f}**"
        f" ({us[('a', 'protected')]:.1f} vs {us[('b', 'protected')]:.1f} µs)",
        f"- public, a ÷ b CPU per request: {us[('a', 'public')] / us[('b', 'public')]:.3f}"
        f" ({us[('a', 'public')]:.1f} vs {us[('b', 'public')]:.1f} µs)",
        f"- protected ÷ public CPU per request: a **{us[('a', 'protected')] / us[('a', 'public')]:.3f}**,"
        f" b {us[('b', 'protected')] / us[('b', 'public')]:.3f}",
    ]
    for f in facts:
        if f["kind"] == "rss" and f["peer"] in ("sg-a", "sg-b"):
            (n0, r0), (n, rn) = f["points"][0], f["points"][-1]
            out.append(f"- RSS per session, {f['peer'][3:]}: {(rn - r0) * 1024 / max(1, n - n0):.0f} B at {n:,} sessions")
    if bad:
        out += ["", "Problems:"] + [f"- {b}" for b in bad]
    return "\n".join(out) + "\n"


def slow_report(facts, env_path):
    """Per pair: the public route without and with the slowloris connections;
    then the ratios of the medians (with / without)."""
    rows = {f["id"]: summarise(f) for f in facts if f["kind"] == "scenario"}
    clients = {f["pair"]: f["client"] for f in facts if f["kind"] == "slowloris"}
    bad = problems(list(rows.values()))
    pairs = sorted(clients)
    env = [line.rstrip("\n") for line in open(env_path)] if env_path else []
    n = clients[pairs[0]]["conns"] if pairs else 0
    out = [
        "# The public route while slowloris connections are held open",
        "",
        f"`bash bench/run.sh --slow`: sessiongate's public route (wrk, closed loop), alternately",
        f"alone and while `bench/slowloris.py` holds {n:,} connections that each send one header",
        "line a second and never finish their head. sessiongate cuts each at",
        "`server.request_head_timeout` (10 s, the default) and the client opens it again at once.",
        "",
        "| pair | req/s alone | p99 alone | req/s with slow | p99 with slow | slow connections opened / cut by sessiongate while held ¹ |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    alone, slow = [], []
    for p in pairs:
        a, s_ = rows[f"sg-public-{p}"], rows[f"sg-public-slow-{p}"]
        alone.append(a)
        slow.append(s_)
        c = clients[p]
        out.append(
            f"| {p} | {a['rps']:,.0f} | {a['p99']:.2f} ms | {s_['rps']:,.0f} | {s_['p99']:.2f} ms "
            f"| {c['opened']:,} / {c['cut_by_server']:,} |"
        )

    def median(rs, key):
        return statistics.median(r[key] for r in rs)

    if pairs:
        out += [
            "",
            f"- p99 with ÷ without (medians): **{median(slow, 'p99') / median(alone, 'p99'):.2f}×**",
            f"- req/s with ÷ without (medians): **{median(slow, 'rps') / median(alone, 'rps'):.2f}×**",
            f"- status or socket errors on the public route: {sum(r['status_errors'] + r['socket_errors'] for r in alone + slow)}",
        ]
    out += [
        "",
        "¹ Counted over the whole time the slow connections were held: measure.py first waits for",
        "a quiet machine (the slow client's own CPU counts against that), so a row can span several",
        "deadlines. The slow client is Python on the same two cores; its CPU shows as `other` load",
        "and is part of what the with-slow rows pay.",
    ]
    if env:
        out += ["", "Machine: " + "; ".join(env)]
    if bad:
        out += ["", "Problems:"] + [f"- {b}" for b in bad]
    return "\n".join(out) + "\n"


def conns_report(facts, env_path):
    """Per side and pair: RSS per idle connection, and the active p99 and req/s
    alone and with the idle connections held; then the medians' ratios."""
    rows = {f["id"]: summarise(f) for f in facts if f["kind"] == "scenario"}
    held = [f for f in facts if f["kind"] == "conns"]
    bad = problems(list(rows.values()))
    env = [line.rstrip("\n") for line in open(env_path)] if env_path else []
    n = held[0]["idle"] if held else 0
    out = [
        "# Many connections: idle keep-alive connections held open",
        "",
        "`bash bench/run.sh --conns`: the public route under a steady closed-loop load (wrk) on a",
        f"few connections, alternately alone and while `bench/idle.py` holds {n:,} idle keep-alive",
        "connections (each made one request, then stays open), for sessiongate and for nginx as a",
        "plain proxy, in the same run. RSS per idle connection is the server's RSS with them held",
        "less its RSS just before, divided by their number (nginx: master and workers).",
        f"sessiongate's `server.read_buffer`: {held[0].get('sg_read_buffer', 4096) if held else '-'} bytes.",
        "",
        "| server | pair | RSS before | RSS held | per idle conn | req/s alone | p99 alone | req/s with idle | p99 with idle |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    median = statistics.median

    per = {"sg": [], "nginx": []}
    p99s = {"sg": ([], []), "nginx": ([], [])}
    for f in held:
        side, p = f["side"], f["pair"]
        a, w = rows[f"{side}-active-{p}"], rows[f"{side}-active-idle-{p}"]
        per_conn = (f["rss_held_kb"] - f["rss_before_kb"]) * 1024 / max(1, f["idle"])
        per[side].append(per_conn)
        p99s[side][0].append(a["p99"])
        p99s[side][1].append(w["p99"])
        name = "sessiongate" if side == "sg" else "nginx"
        out.append(
            f"| {name} | {p} | {f['rss_before_kb'] / 1024:,.1f} MiB | {f['rss_held_kb'] / 1024:,.1f} MiB "
            f"| {per_conn:,.0f} B | {a['rps']:,.0f} | {a['p99']:.2f} ms | {w['rps']:,.0f} | {w['p99']:.2f} ms |"
        )
    if per["sg"] and per["nginx"]:
        sg, ng = median(per["sg"]), median(per["nginx"])
        out += [
            "",
            f"- RSS per idle connection (medians): sessiongate **{sg:,.0f} B**, nginx **{ng:,.0f} B**: "
            f"**{sg / max(1, ng):.2f}×** nginx's",
            f"- active p99 with ÷ without the idle connections (medians): sessiongate "
            f"**{median(p99s['sg'][1]) / median(p99s['sg'][0]):.2f}×**, nginx "
            f"**{median(p99s['nginx'][1]) / median(p99s['nginx'][0]):.2f}×**",
            f"- active p99 with the idle connections, sessiongate ÷ nginx: "
            f"**{median(p99s['sg'][1]) / median(p99s['nginx'][1]):.2f}×**",
            f"- idle connections the server closed while held: "
            f"{sum(f['client']['closed_by_server'] for f in held):,}; failed opens: "
            f"{sum(f['client']['failed'] for f in held):,}",
        ]
    out += [
        "",
        "The idle client is Python on the same two cores; it is idle while the rows run.",
    ]
    if env:
        out += ["", "Machine: " + "; ".join(env)]
    if bad:
        out += ["", "Problems:"] + [f"- {b}" for b in bad]
    return "\n".join(out) + "\n"


TLS_ROWS = ("nginx-tls-keepalive", "sg-tls-protected", "nginx-tls-handshake", "sg-tls-handshake")


def tls_ratios(rows):
    """sessiongate ÷ nginx over TLS, from the medians of each row kind:
    (keep-alive req/s, handshakes/s, keep-alive CPU/req, handshake CPU/req)."""
    def med(kind, key):
        v = sorted(r[key] for r in rows if r["id"] == kind or r["id"].startswith(kind + "-"))
        if not v:
            return None
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    def ratio(a, b, key):
        x, y = med(a, key), med(b, key)
        return x / y if x and y else None

    return (
        ratio("sg-tls-protected", "nginx-tls-keepalive", "rps"),
        ratio("sg-tls-handshake", "nginx-tls-handshake", "rps"),
        ratio("sg-tls-protected", "nginx-tls-keepalive", "proxy_us"),
        ratio("sg-tls-handshake", "nginx-tls-handshake", "proxy_us"),
    )


def tls_report(facts, env_path):
    rows = [summarise(f) for f in facts if f["kind"] == "scenario"]
    env = [line.rstrip("\n") for line in open(env_path)] if env_path else []
    out = [
        "# TLS: sessiongate against nginx with the same certificate",
        "",
        "`bash bench/run.sh --tls`: one ECDSA P-256 certificate for both, TLS 1.2/1.3 (both negotiate",
        "TLS 1.3 with wrk), HTTP/1.1, two workers each, pinned as in the main benchmark. nginx is a plain",
        "TLS-terminating proxy (no auth); sessiongate serves its protected route (a session check on",
        "every request). The handshake rows send `Connection: close`, so every request is a new TCP",
        "connection and a full handshake (wrk does not resume sessions). Pairs alternate which peer",
        "goes first.",
        "",
        "| row | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['id']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['proxy_us']:.1f} "
            f"| {r['status_errors'] + r['socket_errors']} |"
        )
    ka, hs, ka_cpu, hs_cpu = tls_ratios(rows)
    out += [
        "",
        f"- keep-alive req/s, sessiongate (protected) ÷ nginx (proxy), medians: **{fmt_ratio(ka)}** (goal ≥ 0.5×)",
        f"- new handshakes per second, sessiongate ÷ nginx, medians: **{fmt_ratio(hs)}** (goal ≥ 0.5×)",
        f"- proxy CPU per request, sessiongate ÷ nginx: keep-alive {fmt_ratio(ka_cpu)}, handshake {fmt_ratio(hs_cpu)}",
    ]
    if env:
        out += ["", "Machine: " + "; ".join(env)]
    bad = problems(rows)
    if bad:
        out += ["", "Problems:"] + [f"- {b}" for b in bad]
    return "\n".join(out) + "\n"


def median_of(rows, kind, key):
    """The median of `key` over the rounds of row `kind` (ids `<kind>-<round>`)."""
    v = sorted(r[key] for r in rows if r["id"].rsplit("-", 1)[0] == kind)
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def ratio_of(rows, a, b, key):
    x, y = median_of(rows, a, key), median_of(rows, b, key)
    return x / y if x and y else None


def stack_report(facts, env_path):
    rows = [summarise(f) for f in facts if f["kind"] == "scenario"]
    env = [line.rstrip("\n") for line in open(env_path)] if env_path else []

    def ratio(a, b, key):
        return ratio_of(rows, a, b, key)

    out = [
        "# Fitting into a stack: forward-auth and the signed identity",
        "",
        "`bash bench/run.sh --stack`: four set-ups running side by side on the same backend, measured",
        "in rotated rounds (wrk, 64 keep-alive connections, closed loop, pinned as in the main",
        "benchmark). Proxy CPU of the forward-auth rows is nginx's and sessiongate's together.",
        "",
        "| row | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['id']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['proxy_us']:.1f} "
            f"| {r['status_errors'] + r['socket_errors']} |"
        )
    out += [
        "",
        "Ratios of the medians:",
        "",
        f"- nginx auth_request → sessiongate ÷ sessiongate inline: req/s **{fmt_ratio(ratio('nginx-auth-request', 'sg-protected-small', 'rps'))}**, "
        f"proxy CPU per request **{fmt_ratio(ratio('nginx-auth-request', 'sg-protected-small', 'proxy_us'))}**",
        f"- nginx auth_request → sessiongate ÷ nginx alone: req/s {fmt_ratio(ratio('nginx-auth-request', 'nginx-proxy', 'rps'))}",
        f"- sessiongate with X-User-Assertion ÷ without: req/s **{fmt_ratio(ratio('sg-protected-assertion', 'sg-protected-small', 'rps'))}**, "
        f"proxy CPU per request **{fmt_ratio(ratio('sg-protected-assertion', 'sg-protected-small', 'proxy_us'))}**",
    ]
    if env:
        out += ["", "Machine: " + "; ".join(env)]
    bad = problems(rows)
    if bad:
        out += ["", "Problems:"] + [f"- {b}" for b in bad]
    return "\n".join(out) + "\n"


def credentials_report(facts, env_path):
    rows = [summarise(f) for f in facts if f["kind"] == "scenario"]
    env = [line.rstrip("\n") for line in open(env_path)] if env_path else []
    params = {k: v for f in facts if f["kind"] == "param" for k, v in f.items()}
    rounds = [r for r in rows if not r["id"].startswith("sg-jwt-first-")]
    firsts = [r for r in rows if r["id"].startswith("sg-jwt-first-")]

    def ratio(a, b, key):
        return ratio_of(rounds, a, b, key)

    out = [
        "# Credentials: the session cookie, HTTP Basic, a bearer JWT, an API key",
        "",
        "`bash bench/run.sh --credentials`: one sessiongate, the same backend, a protected route",
        "reached with the session cookie, and routes taking only Basic (one user, its password",
        "remembered after the first argon2id hash), only bearer JWTs (one RS256 token, remembered",
        "after its first check) and only API keys (one key, in `store.credentials_file`), measured",
        "in rotated rounds (wrk, 64 keep-alive connections, closed loop, pinned as in the main",
        "benchmark).",
        "",
        "| row | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        out.append(
            f"| {r['id']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['proxy_us']:.1f} "
            f"| {r['status_errors'] + r['socket_errors']} |"
        )
    out += [
        "",
        "Ratios of the medians (issue 23's targets: Basic and a remembered JWT at most 1.10x the",
        "cookie, an API key at most 1.05x):",
        "",
    ]
    for kind, name in (("basic", "Basic"), ("bearer", "bearer JWT, remembered"), ("apikey", "API key")):
        out.append(
            f"- {name} ÷ session cookie: proxy CPU per request "
            f"**{fmt_ratio(ratio(f'sg-protected-{kind}', 'sg-protected-session', 'proxy_us'))}**, "
            f"req/s {fmt_ratio(ratio(f'sg-protected-{kind}', 'sg-protected-session', 'rps'))}"
        )
    if firsts:
        cached = median_of(rounds, "sg-protected-bearer", "proxy_us")
        tokens = params.get("jwt_tokens")
        out += [
            "",
            "## The first check of a JWT, per algorithm",
            "",
            "Every request carries a token the gate has not seen (a new `jti`), so each pays the",
            "signature check, the claims and the insert into the cache. The extra cost is the",
            "row's proxy CPU per request less the remembered token's (the median above).",
            "",
            "| algorithm | req/s | p99 ms | proxy CPU µs/req | first check, extra µs | ÷ remembered | tokens used |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in firsts:
            alg = r["id"].rsplit("-", 1)[1]
            extra = r["proxy_us"] - cached if cached else None
            used = r["requests"]
            note = "" if not tokens or used <= tokens else " (tokens ran out: some repeated)"
            out.append(
                f"| {alg} | {r['rps']:,.0f} | {r['p99']:.2f} | {r['proxy_us']:.1f} "
                f"| {extra:.1f} | {fmt_ratio(r['proxy_us'] / cached if cached else None)} | {used:,}{note} |"
                if extra is not None
                else f"| {alg} | {r['rps']:,.0f} | {r['p99']:.2f} | {r['proxy_us']:.1f} | - | - | {used:,}{note} |"
            )
    if env:
        out += ["", "Machine: " + "; ".join(env)]
    bad = problems(rows)
    if bad:
        out += ["", "Problems:"] + [f"- {b}" for b in bad]
    return "\n".join(out) + "\n"


def main():
    if sys.argv[1] == "--credentials":
        print(credentials_report(load(sys.argv[2]), sys.argv[3]), end="")
        return
    if sys.argv[1] == "--stack":
        print(stack_report(load(sys.argv[2]), sys.argv[3]), end="")
        return
    if sys.argv[1] == "--tls":
        print(tls_report(load(sys.argv[2]), sys.argv[3]), end="")
        return
    if sys.argv[1] == "--conns":
        print(conns_report(load(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None), end="")
        return
    if sys.argv[1] == "--slow":
        print(slow_report(load(sys.argv[2]), sys.argv[3]), end="")
        return
    if sys.argv[1] == "--ab":
        print(ab_report(load(sys.argv[2]), sys.argv[3], sys.argv[4]), end="")
        return
    if sys.argv[1] == "--check":
        facts = load(sys.argv[2])
        rows = [summarise(f) for f in facts if f["kind"] == "scenario"]
        bad = problems(rows)
        want = {"direct", PROXY, "sg-public", "sg-401", *PROTECTED, EXPRESS, *TLS_ROWS, "nginx-auth-request", "sg-protected-assertion"}
        missing = want - {r["id"] for r in rows}
        bad += [f"{m}: scenario missing" for m in sorted(missing)]
        for b in bad:
            print("bench check: " + b, file=sys.stderr)
        print("bench check: " + ("FAILED" if bad else f"ok, {len(rows)} scenarios produced numbers"))
        sys.exit(1 if bad else 0)

    facts_path, env_path, out_dir = sys.argv[1:4]
    facts = load(facts_path)
    env = dict(
        line.rstrip("\n").split("=", 1) for line in open(env_path) if "=" in line
    )
    param = next(f for f in facts if f["kind"] == "param")
    rows = [summarise(f) for f in facts if f["kind"] == "scenario"]
    by_id = {r["id"]: r for r in rows}
    proxy, express = by_id.get(PROXY), by_id.get(EXPRESS)

    for r in rows:
        r["x_proxy"] = r["rps"] / proxy["rps"] if proxy else None
        r["x_proxy_p99"] = r["p99"] / proxy["p99"] if proxy and proxy["p99"] else None
        r["x_express"] = r["rps"] / express["rps"] if express else None

    # ------------------------------------------------------------ the table
    table = [
        "| scenario | req/s (median run) | p50 ms | p99 ms | req/s ÷ nginx proxy | p99 ÷ nginx proxy "
        "| req/s ÷ express | proxy CPU (cores) | proxy CPU µs/req | of which user / kernel µs | backend CPU µs/req "
        "| other load (cores) | every run (req/s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        proxy_cpu = (f"{r['proxy_cores']:.2f} | {r['proxy_us']:.1f}" if r["proxy_us"] > 0 else "– | –")
        split = (f"{r['proxy_user_us']:.1f} / {r['proxy_sys_us']:.1f}"
                 if r["proxy_us"] > 0 and r["has_split"] else "–")
        proxy_cpu += f" | {split}"
        table.append(
            f"| {r['title']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{fmt_ratio(r['x_proxy'])} | {fmt_ratio(r['x_proxy_p99'])} | "
            f"{fmt_ratio(r['x_express'])} | {proxy_cpu} | {r['backend_us']:.1f} | "
            f"{r['other_cores']:.2f} | {', '.join(f'{x:,.0f}' for x in r['all_rps'])} |"
        )

    # ------------------------------------------------------------ memory
    mem = ["| process | live sessions | RSS (MiB) | bytes per session ((RSS_n − RSS_0) / n) |",
           "|---|---:|---:|---:|"]
    per_session = {}
    for f in facts:
        if f["kind"] != "rss":
            continue
        base = f["points"][0][1]
        for n, kb in f["points"]:
            b = (kb - base) * 1024 / n if n else None
            if n:
                per_session[(f["peer"], n)] = b
            mem.append(
                f"| {f['peer']} | {n:,} | {kb / 1024:.1f} | {'–' if b is None else f'{b:,.0f}'} |"
            )
    sg_rss = next((f for f in facts if f["kind"] == "rss" and f["peer"] == "sessiongate"), None)

    store_mem = [f["result"] for f in facts if f["kind"] == "store_memory"]
    mints = [f for f in facts if f["kind"] == "mint"]
    login = next((f for f in facts if f["kind"] == "login"), None)
    crit = sorted((f for f in facts if f["kind"] == "criterion"), key=lambda f: f["id"])

    # ------------------------------------------------------------ targets
    large = param["sessions_large"]
    targets = []
    for pid in PROTECTED:
        r = by_id.get(pid)
        if r and proxy:
            targets.append(
                f"| {r['title']}: throughput ≥ {TARGETS['throughput']}× nginx proxy | "
                f"{r['x_proxy']:.2f}× | {ok(r['x_proxy'] >= TARGETS['throughput'])} |"
            )
            targets.append(
                f"| {r['title']}: p99 ≤ {TARGETS['p99']}× nginx proxy | "
                f"{r['x_proxy_p99']:.2f}× | {ok(r['x_proxy_p99'] <= TARGETS['p99'])} |"
            )
    small = by_id.get("sg-protected-small")
    if small and express:
        targets.append(
            f"| protected route ({param['sessions']:,} sessions) ≥ {TARGETS['express']:.0f}× express "
            f"({param['express_sessions']:,} sessions) | {small['x_express']:.2f}× | "
            f"{ok(small['x_express'] >= TARGETS['express'])} |"
        )
    bps = per_session.get(("sessiongate", large))
    if bps is not None:
        targets.append(
            f"| ≤ {TARGETS['bytes_per_session']} B RSS per session at {large:,} sessions | "
            f"{bps:,.0f} B | {ok(bps <= TARGETS['bytes_per_session'])} |"
        )
    vl = [c for c in crit if c["id"].startswith("hot_path/verify+load")]
    for c in vl:
        targets.append(
            f"| cookie verify + store lookup ≤ {TARGETS['verify_lookup_ns'] / 1000:.0f} µs "
            f"(`{c['id']}`) | {c['median_ns'] / 1000:.2f} µs | "
            f"{ok(c['median_ns'] <= TARGETS['verify_lookup_ns'])} |"
        )

    signed, inline = by_id.get("sg-protected-assertion"), by_id.get("sg-protected-small")
    if signed and inline:
        targets.append(
            f"| protected route with X-User-Assertion: proxy CPU per request ÷ without | "
            f"{signed['proxy_us'] / inline['proxy_us']:.2f}× | {ok(signed['proxy_us'] / inline['proxy_us'] <= 1.1)} |"
        )
    fa = by_id.get("nginx-auth-request")
    if fa and inline:
        targets.append(
            f"| nginx auth_request → sessiongate: req/s ÷ sessiongate inline (about the same) | "
            f"{fa['rps'] / inline['rps']:.2f}× | {ok(fa['rps'] / inline['rps'] >= 0.8)} |"
        )
        targets.append(
            f"| nginx auth_request → sessiongate: proxy CPU per request (nginx + sessiongate) ÷ inline "
            f"(about 1.2×) | {fa['proxy_us'] / inline['proxy_us']:.2f}× | {ok(fa['proxy_us'] / inline['proxy_us'] <= 1.5)} |"
        )
    ka, hs, _, _ = tls_ratios(rows)
    if ka is not None:
        targets.append(f"| TLS keep-alive req/s ≥ 0.5× nginx with TLS (same certificate) | {ka:.2f}× | {ok(ka >= 0.5)} |")
    if hs is not None:
        targets.append(f"| new TLS handshakes per second ≥ 0.5× nginx | {hs:.2f}× | {ok(hs >= 0.5)} |")

    bad = problems(rows) + noise(rows)

    # ------------------------------------------------------------ report.md
    pin_note = (
        f"servers (backend nginx, the proxy under test, node) pinned with "
        f"`taskset -c {param['pin_servers']}`, wrk with `taskset -c {param['pin_wrk']}`"
    )
    md = []
    md.append("# sessiongate benchmark results")
    md.append("")
    md.append(
        f"Written by `bash bench/run.sh{' --smoke' if param['mode'] == 'smoke' else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Everything on 127.0.0.1, one machine. "
        "See [bench/README.md](../README.md) for what each scenario means."
    )
    md.append("")
    if bad:
        md.append("**Warnings:** " + "; ".join(bad))
        md.append("")
    md.append("## Throughput and latency")
    md.append("")
    md.extend(table)
    md.append("")
    md.append("![req/s per scenario](plot.svg)")
    md.append("")
    md.append("## Targets (issue 5)")
    md.append("")
    md.append("| target | measured | met |")
    md.append("|---|---:|:---:|")
    md.extend(targets)
    md.append("")
    md.append("## Memory")
    md.append("")
    md.extend(mem)
    md.append("")
    if sg_rss:
        md.append(
            f"sessiongate's RSS right after start-up was {sg_rss['start_kb'] / 1024:.1f} MiB; RSS_0 is taken "
            "after the public-route and 401 runs (connections and buffers warmed up, no session yet), "
            "the others right after minting (2 s pause), before measuring. Each session is a distinct "
            "user `u<32 hex>` with no roles or data, created by the backend's `X-Session-Login`; the "
            "figure includes the store's slot and hash-table entry, the `Arc<Session>` with its strings, and the per-user index."
        )
        md.append("")
    if store_mem:
        md.append(
            "The store alone (`bench/tools/src/bin/bench_memory.rs`: a `MemoryStore` filled directly, no proxy, "
            "the system allocator; RSS of that process before and after):"
        )
        md.append("")
        md.append("| sessions | users | bytes per session |")
        md.append("|---:|---|---:|")
        what = {
            "distinct": "one user each (as above)",
            "shared": "100 sessions per user",
            "one": "all the same user",
            "anonymous": "no user (no per-user index entry)",
        }
        for m in store_mem:
            md.append(f"| {m['count']:,} | {what.get(m['mode'], m['mode'])} | {m['bytes_per_session']:,.0f} |")
        md.append("")
    if mints:
        md.append(
            "Minting (`bench/tools/src/bin/bench_mint.rs`, 64 keep-alive connections): "
            + "; ".join(f"{m['peer']} {m['count']:,} sessions at {m['per_s']:,} logins/s" for m in mints)
            + "."
        )
        md.append("")
    md.append("## Login cost (argon2id)")
    md.append("")
    if login:
        md.append(
            f"`sessiongate hash-password`, {login['n']} runs: median {login['median_ms']:.1f} ms per run "
            f"(fastest {login['min_ms']:.1f} ms), of which process start-up (`sessiongate --version`) "
            f"is {login['startup_ms']:.1f} ms: one argon2id hash (the OWASP parameters the login uses, "
            "19 MiB) costs about "
            f"{login['median_ms'] - login['startup_ms']:.0f} ms of one core. A login verifies one hash, "
            "so a core does roughly "
            f"{1000 / max(1e-9, login['median_ms'] - login['startup_ms']):.0f} logins/s; "
            "`auth.max_concurrent_hashes` bounds how many run at once."
        )
        md.append("")
    if crit:
        md.append("## Micro-benchmarks (criterion, `cargo bench --bench hot_path`)")
        md.append("")
        md.append(
            "One thread, the system allocator (the `sessiongate` binary's global allocator is not "
            "used by benches); lookups pick a random one of the n sessions each iteration."
        )
        md.append("")
        md.append("| benchmark | median | 95% interval |")
        md.append("|---|---:|---:|")

        def t(ns):
            return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else (f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.0f} ns")

        for c in crit:
            md.append(f"| `{c['id']}` | {t(c['median_ns'])} | {t(c['lo_ns'])} – {t(c['hi_ns'])} |")
        md.append("")
    if os.path.exists(f"{out_dir}/perf.md"):
        md.append("## Profile")
        md.append("")
        md.append(
            "`bash bench/run.sh --perf` also profiles sessiongate on the protected route: "
            "[perf.md](perf.md) (self time by component and the top symbols)."
        )
        md.append("")
    md.append("## How it was run")
    md.append("")
    md.append(
        f"- load: `wrk -t{param['wrk_threads']} -c{param['conns']} -d{param['duration']}` with "
        f"`bench/cookies.lua`, after a {param['warmup']} warm-up, {param['repeats']} run(s) per scenario; "
        "the table shows the median run by req/s (its own p50/p99), and every run's req/s."
    )
    md.append(
        "- every request carries one `Cookie` header drawn at random per request from a file: "
        "the scenario's session cookies, or (scenarios without sessions) 10,000 look-alike "
        "cookies of the same length under another name, so wrk does the same work everywhere."
    )
    md.append(f"- CPU pinning: {pin_note}; the same for every scenario.")
    md.append(
        "- CPU accounting (`bench/measure.py`): CPU seconds of the proxy, the backend and wrk "
        "during each run from `/proc`, and of the whole machine from `/proc/stat`; \"other load\" "
        "is the rest, i.e. other processes on this shared machine (≈ 0 when it is quiet). Before "
        "each run it waits (up to a limit) for the machine to be < 15% busy. Proxy CPU µs/req "
        "is the most stable figure when the machine is noisy; its split into user space and kernel "
        "(`utime` / `stime`) shows which side a difference is on (loopback TCP is kernel time)."
    )
    discarded = [f"{r['id']} {r['discarded']}" for r in rows if r["discarded"]]
    md.append(
        f"- a run during which other processes used more than 0.15 cores is discarded and "
        f"repeated (at most 6 times per scenario). Discarded here: "
        f"{', '.join(discarded) if discarded else 'none'}."
    )
    md.append(
        "- rows marked \"experiment\" are not the default configuration: one setting changed "
        "(`server.threads = 1`) to show where time goes."
    )
    md.append(
        "- backend: nginx `return 200 \"ok\\n\";`, 1 worker, access log off, keep-alive "
        "1,000,000 requests per connection."
    )
    md.append(
        f"- nginx proxy: {param['sg_threads']} workers (= sessiongate's threads), "
        "`upstream { keepalive 64; }`, `proxy_http_version 1.1`, `proxy_set_header Connection \"\"`, "
        "access log off."
    )
    md.append(
        f"- sessiongate: {param['sg_threads']} threads, `[log] access_log = false` in every row "
        "except the one marked \"access log on\" (text format, stdout to a file), store capacity "
        "1,100,000, idle timeout 4 h (no session expires during the run), cookie `sid`, "
        "`secure = false`; the secret comes from an environment variable. Protected path `/app` "
        "(default rule: authenticated), public path `/public/x`, 401 path `/api/x`."
    )
    md.append(
        f"- express peer: one node process (express-session's MemoryStore is per process, so "
        f"it cannot be clustered), {param['express_sessions']:,} sessions; http-proxy-middleware "
        "with a keep-alive `http.Agent` (64 sockets) to the backend, `X-User` set from the session, "
        "the cookie removed."
    )
    md.append("")
    md.append("Versions:")
    md.append("")
    for k, v in env.items():
        md.append(f"- {k}: {v}")
    md.append("")

    report = "\n".join(md)
    with open(f"{out_dir}/report.md", "w") as f:
        f.write(report)
    with open(f"{out_dir}/plot.svg", "w") as f:
        f.write(svg_chart(rows, f"sessiongate benchmark: wrk -c{param['conns']}, "
                                f"{env.get('cpu', '').split(' (')[-1].rstrip(')')}"))

    print()
    print("\n".join(table))
    print()
    print("\n".join(["| target | measured | met |", "|---|---:|:---:|"] + targets))
    print()
    print("\n".join(mem))
    if login:
        print(f"\nlogin: one argon2id hash ~{login['median_ms'] - login['startup_ms']:.0f} ms")
    for c in crit:
        print(f"criterion {c['id']}: {c['median_ns']:.0f} ns")
    for b in bad:
        print("WARNING: " + b)
    print(f"\nwrote {out_dir}/report.md and {out_dir}/plot.svg")


if __name__ == "__main__":
    main()
