#!/usr/bin/env python3
"""The soak's report (bench/soak.sh calls it; standard library only).

    soak_report.py LOAD_JSONL SAMPLES_JSONL OUT_DIR MODE RATE PEAK SESSIONS SECONDS COMMIT [NGINX_JSONL]

Writes OUT_DIR/soak.md and OUT_DIR/soak.svg (RSS and p99 over time) and prints
the summary. NGINX_JSONL is the same schedule against nginx as a plain proxy,
the machine's baseline: its latencies go beside sessiongate's, with the tail
targets (p99 at most 10x p50, at most 1.5x nginx's p99, per interval). The first fifth of the run (at least one sample) is the warm-up:
the RSS band is judged after it.
"""

import json
import sys

load_path, samples_path, out_dir, mode, rate, peak, sessions, seconds, commit = sys.argv[1:10]
load = [json.loads(l) for l in open(load_path) if l.strip()]
nginx = [json.loads(l) for l in open(sys.argv[10]) if l.strip()] if len(sys.argv) > 10 else []
samples = [json.loads(l) for l in open(samples_path) if l.strip()]
seconds = int(seconds)
warm = seconds / 5
after = [s for s in samples if s["t_s"] >= warm] or samples[-1:]

rss = [s["rss_kb"] / 1024 for s in after]
mean_rss = sum(rss) / len(rss)
band = (min(rss) / mean_rss - 1, max(rss) / mean_rss - 1)
# The lowest RSS of each load interval: the process without the transient
# argon2id buffer (19 MiB per password check, freed after it), so a leak
# shows as a rising floor.
floors = []
for i in load:
    inside = [s["rss_kb"] / 1024 for s in after if i["t_s"] - int(sys.argv[8]) / len(load) <= s["t_s"] <= i["t_s"]]
    if inside:
        floors.append(min(inside))
mean_floor = sum(floors) / len(floors) if floors else 0
floor_band = ((min(floors) / mean_floor - 1, max(floors) / mean_floor - 1) if floors else (0, 0))
fds = [s["fds"] for s in after]
live = [s["live"] for s in after if s["live"] is not None]
errors = sum(i["errors"] for i in load)
requests = sum(i["requests"] for i in load)
kinds = {}
for i in load:
    for k, v in i["kinds"].items():
        kinds[k] = kinds.get(k, 0) + v

md = [
    "# Soak",
    "",
    f"`bash bench/soak.sh{' --ci' if mode == 'ci' else ''}` at commit {commit}: {seconds} s at "
    f"{int(rate):,} req/s (half of the {peak} req/s peak of the same mix and client, "
    f"measured first), {int(sessions):,} live sessions minted before, 2 proxy threads.",
    "The load is `bench/tools/src/bin/bench_soak.rs`: a fixed schedule over 32 keep-alive",
    "connections, latency counted from when a request was due.",
    "",
    f"- **errors: {errors}** of {requests:,} requests "
    + "(" + ", ".join(f"{k} {v:,}" for k, v in kinds.items()) + ")",
    f"- RSS after the warm-up (first {warm:.0f} s): {min(rss):.1f}–{max(rss):.1f} MiB, "
    f"**{band[0] * 100:+.1f} % / {band[1] * 100:+.1f} %** around its mean of {mean_rss:.1f} MiB",
    f"- RSS floor (the lowest sample of each interval after the warm-up): "
    f"{min(floors):.1f}–{max(floors):.1f} MiB, **{floor_band[0] * 100:+.1f} % / {floor_band[1] * 100:+.1f} %** "
    f"around {mean_floor:.1f} MiB, first {floors[0]:.1f}, last {floors[-1]:.1f}. The samples above it "
    "are argon2id's 19 MiB buffer for the password login in flight (one a second), which the "
    "allocator returns between logins." if floors else "- RSS floor: too few samples",
    f"- open file descriptors after the warm-up: {min(fds)}–{max(fds)}",
    f"- live sessions after the warm-up: {min(live):,}–{max(live):,}" if live else "- live sessions: not sampled",
    "",
]
if nginx:
    tail = [i["p99_ms"] / i["p50_ms"] for i in load if i["p50_ms"]]
    vs = [i["p99_ms"] / n["p99_ms"] for i, n in zip(load, nginx) if n["p99_ms"]]
    worst = max(i["max_ms"] for i in load)
    md += [
        "Tail targets per interval (issue 22): p99 at most 10x p50, at most 1.5x nginx's p99 "
        "on the same schedule right after, and no episode of seconds.",
        "",
        f"- p99 / p50: {min(tail):.1f}x–{max(tail):.1f}x",
        f"- p99 / nginx's p99: {min(vs):.2f}x–{max(vs):.2f}x",
        f"- the longest proxied request: {worst:.1f} ms (nginx: {max(n['max_ms'] for n in nginx):.1f} ms)",
        f"- the longest password login (apart, not in the percentiles: its argon2id hash runs at "
        f"idle CPU priority behind every proxied request): "
        f"{max(i.get('password_login_max_ms', 0) for i in load):.1f} ms",
        f"- nginx errors: {sum(n['errors'] for n in nginx)}",
        "",
        "| interval end (s) | requests | req/s | errors | p50 ms | p99 ms | max ms | nginx p50 | nginx p99 | nginx max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
else:
    md += [
        "| interval end (s) | requests | req/s | errors | p50 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
for k, i in enumerate(load):
    row = (
        f"| {i['t_s']} | {i['requests']:,} | {i['rate']:,.0f} | {i['errors']} | "
        f"{i['p50_ms']:.2f} | {i['p99_ms']:.2f} | {i['max_ms']:.1f} |"
    )
    if nginx and k < len(nginx):
        n = nginx[k]
        row += f" {n['p50_ms']:.2f} | {n['p99_ms']:.2f} | {n['max_ms']:.1f} |"
    md.append(row)
samples_errors = [s for i in load for s in i["error_samples"]]
if samples_errors:
    md += ["", "First errors:"] + [f"- `{e}`" for e in samples_errors[:10]]
md += ["", "![RSS and p99 over the soak](soak.svg)", ""]


def polyline(points, x0, y0, w, h, xmax, ymax, colour):
    pts = " ".join(
        f"{x0 + x / xmax * w:.1f},{y0 + h - (y / ymax * h if ymax else 0):.1f}" for x, y in points
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>'


def panel(title, unit, points, y0, colour):
    w, h, x0 = 640, 150, 60
    ymax = max((y for _, y in points), default=1) * 1.15 or 1
    xmax = max(seconds, 1)
    out = [
        f'<text x="{x0}" y="{y0 - 8}" font-size="13">{title}</text>',
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
        f'<text x="{x0 - 6}" y="{y0 + 10}" font-size="11" text-anchor="end">{ymax:.0f} {unit}</text>',
        f'<text x="{x0 - 6}" y="{y0 + h}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{x0 + w}" y="{y0 + h + 14}" font-size="11" text-anchor="end">{xmax} s</text>',
        f'<line x1="{x0 + warm / xmax * w:.1f}" y1="{y0}" x2="{x0 + warm / xmax * w:.1f}" y2="{y0 + h}" stroke="#ccc" stroke-dasharray="4"/>',
        polyline(points, x0, y0, w, h, xmax, ymax, colour),
    ]
    return out


svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="720" height="420" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>']
svg += panel("sessiongate RSS (MiB); dashed: end of warm-up", "MiB",
             [(s["t_s"], s["rss_kb"] / 1024) for s in samples], 30, "#1f77b4")
svg += panel("p99 latency per interval (ms)", "ms",
             [(i["t_s"], i["p99_ms"]) for i in load], 240, "#d62728")
svg.append("</svg>")

open(f"{out_dir}/soak.md", "w").write("\n".join(md))
open(f"{out_dir}/soak.svg", "w").write("\n".join(svg) + "\n")
print("\n".join(md[:20] if nginx else md[:13]))
