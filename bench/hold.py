#!/usr/bin/env python3
"""Holds idle and slowloris connections against host:port until killed: IDLE connections that
never send a byte, and SLOW ones that send a request head one byte per second and reconnect
when the server cuts them. Binds to SOURCE (another loopback address: another client).
    hold.py HOST PORT IDLE SLOW [SOURCE]"""
import selectors
import socket
import sys
import time

host, port, n_idle, n_slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
source = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.2"
HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000


def conn():
    s = socket.socket()
    s.bind((source, 0))
    s.connect((host, port))
    s.setblocking(False)
    return s


idle = [conn() for _ in range(n_idle)]
slow = [[conn(), 0] for _ in range(n_slow)]
cut = 0
print("holding idle=%d slow=%d" % (len(idle), len(slow)), flush=True)
while True:
    for entry in slow:
        s, pos = entry
        try:
            s.send(HEAD[pos:pos + 1])
            entry[1] = (pos + 1) % len(HEAD)
        except OSError:
            cut += 1
            s.close()
            try:
                entry[0], entry[1] = conn(), 0
            except OSError:
                pass
    time.sleep(1)
    if cut:
        print("slowloris connections cut so far: %d" % cut, flush=True)
