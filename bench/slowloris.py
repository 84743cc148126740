#!/usr/bin/env python3
"""Hold N slow connections open against a server, as a slowloris client does
(bench/run.sh; standard library only).

    slowloris.py HOST:PORT N READY_FILE [GAP_SECONDS]

Each connection sends a request line, then one header line every GAP seconds
(default 1) and never ends its head. When the server closes one (sessiongate's
server.request_head_timeout), it is opened again at once, so about N are held
all the time. READY_FILE is written once all N are open. On SIGTERM it prints
one JSON object: {"conns": N, "opened": ..., "cut_by_server": ...}.
"""

import asyncio
import json
import signal
import sys

host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[2])
ready_file = sys.argv[3]
gap = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
stats = {"conns": n, "opened": 0, "cut_by_server": 0}


async def one(i, opened):
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(gap)
            continue
        stats["opened"] += 1
        if not opened.done():
            opened.set_result(None)
        try:
            writer.write(b"GET /public/slow HTTP/1.1\r\nHost: bench\r\n")
            k = 0
            while True:
                await writer.drain()
                try:
                    # Wake after GAP, or when the server closes the connection.
                    data = await asyncio.wait_for(reader.read(1), gap)
                    if not data:
                        break
                except asyncio.TimeoutError:
                    pass
                writer.write(b"X-Slow-%d: %d\r\n" % (k, i))
                k += 1
        except OSError:
            pass
        stats["cut_by_server"] += 1
        writer.close()


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    opened = [loop.create_future() for _ in range(n)]
    tasks = [asyncio.create_task(one(i, f)) for i, f in enumerate(opened)]
    await asyncio.wait(opened)
    with open(ready_file, "w") as f:
        f.write("ready\n")
    await stop
    for t in tasks:
        t.cancel()
    print(json.dumps(stats), flush=True)


asyncio.run(main())
