#!/usr/bin/python3
"""Minimal HTTP/1.0 load generator for peers that close the connection after
each response (openssl ocsp): N concurrent workers POST the same body for D
seconds, one connection per request. Prints requests/s."""
import asyncio
import sys
import time


async def worker(host, port, payload, deadline, counts):
    while time.monotonic() < deadline:
        try:
            r, w = await asyncio.open_connection(host, port)
            w.write(payload)
            await w.drain()
            data = await r.read()
            w.close()
            if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]:
                counts[0] += 1
            else:
                counts[1] += 1
        except OSError:
            counts[1] += 1


async def main():
    host, port, path, ctype, body_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    conns, secs = int(sys.argv[6]), float(sys.argv[7])
    body = open(body_file, "rb").read()
    payload = (f"POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    counts = [0, 0]
    start = time.monotonic()
    deadline = start + secs
    await asyncio.gather(*(worker(host, port, payload, deadline, counts) for _ in range(conns)))
    print(f"{counts[0] / (time.monotonic() - start):.0f} {counts[1]}")


asyncio.run(main())
