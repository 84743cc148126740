#!/usr/bin/env python3
"""Hold N idle keep-alive connections open against a server (bench/run.sh
--conns; standard library only).

    idle.py HOST:PORT N READY_FILE [PATH]

Each connection sends one complete keep-alive request (GET PATH, default
/public/idle), reads the whole response, and then stays open, idle. A
connection the server closes is opened again, so about N are held all the
time. READY_FILE is written once all N have had their answer. On SIGTERM it
prints one JSON object: {"conns": N, "opened": ..., "closed_by_server": ...,
"failed": ...}.
"""

import asyncio
import json
import signal
import sys

host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[2])
ready_file = sys.argv[3]
path = sys.argv[4] if len(sys.argv) > 4 else "/public/idle"
stats = {"conns": n, "opened": 0, "closed_by_server": 0, "failed": 0}
REQUEST = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


async def answer(reader):
    """Read one response with a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def one(answered):
    first = True
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(REQUEST)
            await writer.drain()
            await answer(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats["failed"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["opened"] += 1
        if first:
            first = False
            answered.release()
        # Idle until the server closes (EOF) or we are stopped.
        try:
            await reader.read(1)
        except OSError:
            pass
        stats["closed_by_server"] += 1
        writer.close()


async def main():
    answered = asyncio.Semaphore(0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = []
    # Open them in batches, so the listen backlog is not flooded.
    for i in range(n):
        tasks.append(asyncio.create_task(one(answered)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    for _ in range(n):
        await answered.acquire()
    with open(ready_file, "w") as f:
        f.write("ready\n")
    await stop.wait()
    print(json.dumps(stats), flush=True)
    for t in tasks:
        t.cancel()


asyncio.run(main())
