#!/usr/bin/env python3
"""Holds N idle TLS keep-alive connections to a server and reports how much
its memory grew: every connection completes a handshake and one
`GET /hello`, then stays open and silent while the server's resident
memory (VmRSS of the PIDs given, summed) is read.

    idle.py PORT N PID [PID...]   -> "N rss_before_kib rss_after_kib bytes_per_conn"
"""

import asyncio
import ssl
import sys


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def hold(port, ctx, gate, opened, release):
    # The gate opens connections in waves, so the listen backlog never
    # overflows; a connection leaves it once its answer is read.
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    opened.append(writer)
    await release.wait()
    writer.close()


async def main():
    port, n, pids = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    before = rss_kib(pids)
    gate, opened, release = asyncio.Semaphore(200), [], asyncio.Event()
    tasks = [asyncio.ensure_future(hold(port, ctx, gate, opened, release)) for _ in range(n)]
    while len(opened) < n:
        failed = [t.exception() for t in tasks if t.done() and t.exception()]
        if failed:
            print(f"{len(failed)} connections failed: {failed[0]!r}", file=sys.stderr)
            sys.exit(1)
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    after = rss_kib(pids)
    print(n, before, after, round((after - before) * 1024 / n))
    release.set()
    await asyncio.gather(*tasks)


asyncio.run(main())
