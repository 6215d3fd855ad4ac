#!/usr/bin/env python3
"""A TCP proxy that adds latency, for benchmarks against an upstream "far away" (this kernel has
no netem): each connection waits DELAY_MS after its client's first bytes before it is passed
to the upstream, then bytes flow both ways unchanged. With `openssl ocsp`, which closes each
connection after its answer, that is DELAY_MS per request, like a WAN round trip. A
connection that closes before sending anything never reaches the upstream (OpenSSL 3.0's
responder spins after an empty connection). Counts the connections it passed on, writing the
count to COUNT_FILE every 0.2 s.

  delay_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS COUNT_FILE
"""
import asyncio
import os
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def main():
    listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
    count_file = sys.argv[4]
    passed = 0

    async def handle(creader, cwriter):
        nonlocal passed
        try:
            first = await creader.read(65536)
            if not first:
                cwriter.close()
                return
            await asyncio.sleep(delay)
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", upstream)
        except (ConnectionError, OSError):
            cwriter.close()
            return
        passed += 1
        uwriter.write(first)
        await asyncio.gather(pipe(creader, uwriter), pipe(ureader, cwriter))

    async def report():
        while True:
            tmp = count_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % passed)
            os.replace(tmp, count_file)
            await asyncio.sleep(0.2)

    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=1024)
    print("listening", flush=True)
    asyncio.get_running_loop().create_task(report())
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
