#!/usr/bin/env python3
"""One wrk run, with CPU accounting (bench/run.sh calls it; standard library only).

    measure.py [--proxy PID,...] [--backend PID,...] [--quiet-wait SECONDS] -- wrk ARGS...

Prints one JSON object on stdout: wrk's `RESULT` line (bench/cookies.lua) plus
  proxy_cpu_s / backend_cpu_s  CPU seconds used by those processes and their
                               children (nginx workers) during the run,
  proxy_user_s / proxy_sys_s   the proxy's split into user space and kernel,
  wrk_cpu_s                    CPU seconds wrk used,
  machine_busy_s               CPU seconds the whole machine was busy (/proc/stat),
  other_cpu_s                  what is left: other processes on the machine (the
                               kernel charges loopback TCP's softirq work to the
                               process that sends, so this is ~0 on a quiet machine),
  waited_s                     how long it waited for a quiet machine first.
and a one-line summary on stderr.

With --quiet-wait, it first waits (up to that many seconds) until the machine
has been less than 15% busy for one second, so that a build or test run of
someone else's does not land in the middle of a measurement.
"""

import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """(busy, total, irq) CPU seconds since boot, all CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy / TICK, (busy + idle + iowait) / TICK, (irq + softirq) / TICK


def children_of(pids):
    """pids plus all their descendants."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def cpu_split(pids):
    """(user, system) CPU seconds of these processes (all their threads)."""
    user = system = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / TICK  # utime
            system += int(fields[12]) / TICK  # stime
        except OSError:
            pass
    return user, system


def cpu_of(pids):
    return sum(cpu_split(pids))


def wait_quiet(limit):
    start = time.time()
    while True:
        b0, t0, _ = machine_busy()
        time.sleep(1)
        b1, t1, _ = machine_busy()
        if (b1 - b0) / max(1e-9, t1 - t0) < 0.15 or time.time() - start >= limit:
            return time.time() - start - 1


def main():
    args = sys.argv[1:]
    proxy, backend, quiet = [], [], 0.0
    while args and args[0] != "--":
        opt, val = args[0], args[1]
        args = args[2:]
        if opt == "--proxy":
            proxy = [int(p) for p in val.split(",") if p]
        elif opt == "--backend":
            backend = [int(p) for p in val.split(",") if p]
        elif opt == "--quiet-wait":
            quiet = float(val)
        else:
            sys.exit(f"measure.py: unknown option {opt}")
    cmd = args[1:]
    waited = wait_quiet(quiet) if quiet > 0 else 0.0

    proxy_set, backend_set = children_of(proxy), children_of(backend)
    (pu0, ps0), k0 = cpu_split(proxy_set), cpu_of(backend_set)
    p0 = pu0 + ps0
    busy0, _, irq0 = machine_busy()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, _, irq1 = machine_busy()
    (pu1, ps1), k1 = cpu_split(proxy_set), cpu_of(backend_set)
    p1 = pu1 + ps1

    line = next((l for l in run.stdout.splitlines() if l.startswith("RESULT ")), None)
    if run.returncode != 0 or line is None:
        sys.stderr.write(run.stdout)
        sys.exit(f"measure.py: wrk failed (exit {run.returncode})")
    r = json.loads(line[len("RESULT "):])
    wrk_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    r.update(
        proxy_cpu_s=round(p1 - p0, 3),
        proxy_user_s=round(pu1 - pu0, 3),
        proxy_sys_s=round(ps1 - ps0, 3),
        backend_cpu_s=round(k1 - k0, 3),
        wrk_cpu_s=round(wrk_cpu, 3),
        machine_busy_s=round(busy1 - busy0, 3),
        other_cpu_s=round((busy1 - busy0) - (p1 - p0) - (k1 - k0) - wrk_cpu, 3),
        waited_s=round(waited, 1),
    )
    secs = r["duration_us"] / 1e6
    rps = r["requests"] / secs
    sys.stderr.write(
        "   %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %d  socket errors %d | "
        "CPU (cores): proxy %.2f backend %.2f wrk %.2f other %.2f%s\n"
        % (
            rps,
            r["p50_us"] / 1e3,
            r["p99_us"] / 1e3,
            r["err_status"],
            r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"],
            r["proxy_cpu_s"] / secs,
            r["backend_cpu_s"] / secs,
            r["wrk_cpu_s"] / secs,
            r["other_cpu_s"] / secs,
            f" (waited {waited:.0f} s for a quiet machine)" if waited >= 1 else "",
        )
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
