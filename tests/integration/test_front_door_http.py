"""The HTTP front end of the real staplerd (src/http_server.c): HTTP semantics (HEAD, Date,
Last-Modified, Allow), strict framing, pipelining, and the limits one client cannot push past
(connections, descriptors, slow heads, clients that leave while their fetch stalls).

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import base64
import email.utils
import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Crafter, free_port, IntegrationTestCase, PEM, raw_http, read_responses,
                     read_text, run, setUpModule, staplerd_binary, wait_until)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HttpTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.signer = self.pki.responder(self.root)
        self.port = free_port()
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def leaf(self, name="leaf", serial="1001", urls=None):
        return self.pki.leaf(self.root, name, serial=serial,
                             ocsp_urls=urls if urls is not None else
                             ["http://127.0.0.1:%d" % self.port])

    def get_path(self, leaf):
        req = os.path.join(self.tmp, leaf.serial + ".req")
        run(["openssl", "ocsp", "-issuer", self.root.cert, "-cert", leaf.cert, "-no_nonce",
             "-reqout", req])
        with open(req, "rb") as f:
            b64 = base64.b64encode(f.read()).decode()
        return "/ocsp/" + b64.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")

    def served(self, extra=""):
        """staplerd with one staple cached; returns (daemon, leaf, staple DER)."""
        leaf = self.leaf()
        self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=extra)
        st, h, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        return d, leaf, body

    def connect(self, d):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        self.addCleanup(s.close)
        return s

    def health(self, d):
        st, _, b = d.request("GET", "/healthz")
        self.assertEqual(st, 200, b)
        return json.loads(b)

    # ----------------------------------------------------------------------------------------
    # HTTP semantics (RFC 9110/9112)

    def test_head_has_headers_and_no_body_on_every_route(self):
        d, leaf, staple = self.served()
        path = self.get_path(leaf)
        routes = [("HEAD", path, 200, len(staple)), ("HEAD", "/healthz", 200, None),
                  ("HEAD", "/v1/staple", 405, None), ("HEAD", "/v1/staples", 405, None),
                  ("HEAD", "/nowhere", 404, None), ("HEAD", "/ocsp/!!!", 200, None)]
        for method, p, want, length in routes:
            with self.subTest(path=p):
                s = self.connect(d)
                # Each HEAD is followed by a GET on the same connection: a body sent for the
                # HEAD would be read as the GET's status line.
                s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n"
                           "Host: x\r\nConnection: close\r\n\r\n" % (method, p)).encode())
                (r1, r2), rest = read_responses(s, 2, heads=(0,))
                self.assertEqual(r1[0], want)
                self.assertEqual(r1[2], b"")
                self.assertIn("date", r1[1])
                self.assertEqual(r2[0], 200)
                self.assertEqual(json.loads(r2[2])["status"], "ok")
                self.assertEqual(rest, b"")
                if length is not None:
                    self.assertEqual(int(r1[1]["content-length"]), length)
                    self.assertEqual(r1[1]["content-type"], "application/ocsp-response")

    def test_raw_pipelined_head_then_get_are_two_responses(self):
        d, leaf, staple = self.served()
        path = self.get_path(leaf)
        s = self.connect(d)
        s.sendall(("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                   % (path, path)).encode())
        (h, g), rest = read_responses(s, 2, heads=(0,))
        self.assertEqual((h[0], g[0]), (200, 200))
        self.assertEqual(h[2], b"")
        self.assertEqual(g[2], staple)
        self.assertEqual(h[1]["content-length"], g[1]["content-length"])
        self.assertEqual(h[1]["etag"], g[1]["etag"])
        # Nothing else arrives: the connection stays open and quiet.
        s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            s.recv(1)

    def test_every_answer_has_date_http10_included(self):
        d, leaf, staple = self.served()
        for args in (["-0", "http://127.0.0.1:%d/healthz" % d.port],
                     ["-0", "http://127.0.0.1:%d%s" % (d.port, self.get_path(leaf))],
                     ["-0", "http://127.0.0.1:%d/nowhere" % d.port],
                     ["-0", "-X", "PUT", "http://127.0.0.1:%d/v1/staple" % d.port],
                     ["http://127.0.0.1:%d/healthz" % d.port]):
            with self.subTest(args=args):
                p = run(["curl", "-sS", "-D", "-", "-o", "/dev/null"] + args)
                head = p.stdout.lower().replace("\r\n", "\n")
                self.assertIn("\ndate: ", head)
                date = [l for l in head.split("\n") if l.startswith("date: ")][0][6:]
                self.assertLess(abs(email.utils.parsedate_to_datetime(date).timestamp()
                                    - time.time()), 5)
        # HTTP/1.0 without keep-alive: the answer says close, and closes.
        st, h, _ = raw_http(d.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(st, 200)
        self.assertEqual(h.get("connection"), "close")
        self.assertIn("date", h)

    def test_allow_lists_head_where_head_is_served(self):
        d, leaf, _ = self.served()
        for path, allow in (("/healthz", "GET, HEAD"), ("/ocsp", "GET, HEAD, POST"),
                            ("/v1/staple", "POST"), ("/v1/staples", "POST")):
            with self.subTest(path=path):
                st, h, b = d.request("DELETE", path)
                self.assertJsonError(st, h, b, 405)
                self.assertEqual(h.get("allow"), allow)

    def test_last_modified_never_after_date(self):
        """An upstream clock three minutes ahead (inside the accepted skew): thisUpdate is in
        the future, and Last-Modified says now instead."""
        crafter = Crafter()
        proxy = self.fault_proxy(self.port)
        leaf = self.leaf(urls=[proxy.url])
        proxy.set("body", body=lambda req: crafter.response(leaf, self.root, self.signer,
                                                           this_update=180, next_update=86400))
        d = self.staplerd(self.ca_file)
        st, h, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        for _ in range(2):
            for st, h, _ in (d.staple(leaf.pem(), PEM),
                             d.request("GET", self.get_path(leaf))):
                self.assertEqual(st, 200)
                lm = email.utils.parsedate_to_datetime(h["last-modified"])
                date = email.utils.parsedate_to_datetime(h["date"])
                self.assertLessEqual(lm, date)
            time.sleep(1.1)

    def test_get_with_trailing_slash(self):
        d, leaf, staple = self.served()
        path = self.get_path(leaf)
        for p in (path, path + "/", path.replace("%2F", "/").replace("%2B", "+")
                  .replace("%3D", "=") + "/"):
            with self.subTest(path=p):
                st, h, body = d.request("GET", p)
                self.assertEqual(st, 200)
                self.assertEqual(body, staple)

    def test_remembered_get_follows_the_entry(self):
        """A GET answered once is remembered by its bytes; the memory names the entry, not
        the answer: after an evict the same request is fetched anew, after a refetch the
        newer staple is what it gets."""
        fwd = self.forwarder(self.port)
        leaf = self.leaf(urls=[fwd.url])
        self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file)
        path = self.get_path(leaf)
        st, _, first = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200)
        for p in (path, path, path + "/", path + "/"):
            st, _, body = d.request("GET", p)
            self.assertEqual((st, body), (200, first))
        self.assertEqual(fwd.count, 1)
        ctl = os.environ.get("STAPLERCTL") or os.path.join(
            os.path.dirname(staplerd_binary()), "staplerctl")
        time.sleep(1.1)     # a later thisUpdate, so the refetched staple differs
        run([ctl, "-c", d.conf, "evict", leaf.serial])
        st, _, again = d.request("GET", path)
        self.assertEqual(st, 200)
        self.assertEqual(fwd.count, 2, "an evicted entry must not be served from the memory")
        self.assertNotEqual(again, first)
        st, _, third = d.request("GET", path)
        self.assertEqual((st, third), (200, again))
        self.assertEqual(fwd.count, 2)

    # ----------------------------------------------------------------------------------------
    # Framing

    def test_ambiguous_framing_is_400_and_closes(self):
        d, leaf, _ = self.served()
        pem = leaf.pem()
        for name, head in (
                ("duplicate", "Content-Length: %d\r\nContent-Length: %d\r\n" % (len(pem), len(pem))),
                ("signed", "Content-Length: +%d\r\n" % len(pem)),
                ("plus_zero", "Content-Length: +0\r\n"),
                ("cl_and_chunked", "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"
                 % len(pem)),
                ("obs_fold", "Content-Length: %d\r\nX-A: b\r\n c\r\n" % len(pem))):
            with self.subTest(case=name):
                req = ("POST /v1/staple HTTP/1.1\r\nHost: x\r\n" + head + "\r\n").encode() + pem
                st, h, b = raw_http(d.port, req)
                self.assertJsonError(st, h, b, 400)
                self.assertEqual(h.get("connection"), "close")
        for req, want in ((b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
                          (b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip"
                           b"\r\n\r\n", 501),
                          (b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n",
                           431),
                          (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)):
            st, h, b = raw_http(d.port, req)
            self.assertJsonError(st, h, b, want)
        self.assertEqual(self.health(d)["status"], "ok")

    def test_chunked_body_is_served(self):
        d, leaf, staple = self.served()
        pem = leaf.pem()
        body = b"".join(b"%x\r\n%s\r\n" % (len(pem[i:i + 100]), pem[i:i + 100])
                        for i in range(0, len(pem), 100)) + b"0\r\n\r\n"
        s = self.connect(d)
        s.sendall(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/x-pem-file\r\n\r\n" + body)
        (r,), _ = read_responses(s, 1)
        self.assertEqual(r[0], 200)
        self.assertEqual(r[2], staple)

    def test_pipelined_requests_are_answered_in_order(self):
        d, leaf, staple = self.served()
        pem = leaf.pem()
        path = self.get_path(leaf)
        reqs = []
        want = []
        for i in range(20):
            kind = i % 4
            if kind == 0:
                reqs.append(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                want.append((200, None))
            elif kind == 1:
                reqs.append(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                            % len(pem) + pem)
                want.append((200, staple))
            elif kind == 2:
                reqs.append(b"GET /nowhere/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                want.append((404, None))
            else:
                reqs.append(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
                want.append((200, staple))
        s = self.connect(d)
        s.sendall(b"".join(reqs))
        got, rest = read_responses(s, len(reqs))
        self.assertEqual(rest, b"")
        for i, ((st, h, body), (wst, wbody)) in enumerate(zip(got, want)):
            self.assertEqual(st, wst, i)
            if wbody is not None:
                self.assertEqual(body, wbody, i)
            if i % 4 == 2:
                self.assertIn("error", json.loads(body))

    def test_long_pipeline_is_answered_whole(self):
        """More pipelined answers than the write buffer holds at once (500 × the staple):
        all arrive, in order, on a client that reads only after sending everything."""
        d, leaf, staple = self.served()
        req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.get_path(leaf)).encode()
        s = socket.socket()
        self.addCleanup(s.close)
        # A small receive window: the answers back up in staplerd's write buffer.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", d.port))
        s.sendall(req * 499 + req.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        time.sleep(0.5)
        got, rest = read_responses(s, 500, timeout=20)
        self.assertEqual(rest, b"")
        self.assertTrue(all(st == 200 and body == staple for st, _, body in got))
        self.assertEqual(s.recv(1), b"")

    # ----------------------------------------------------------------------------------------
    # Limits

    def test_slowloris_is_cut_at_the_header_deadline(self):
        d = self.start_limited(1024, "header_timeout = 2s\n")
        s = self.connect(d)
        # 128 bytes a byte per 0.3 s: 38 s for the whole head, cut at its 2 s deadline. What
        # is asserted is the order (the 408 comes before the head is complete), not a time.
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
        got = b""
        sent = 0
        s.settimeout(0.2)
        for i in range(len(req)):
            try:
                s.send(req[i:i + 1])
                sent += 1
            except OSError:
                break
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got:
                    break
            except socket.timeout:
                pass
            time.sleep(0.3)
        self.assertLess(sent, len(req), "the slow head was read to its end, never cut")
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got[:200])
        self.assertIn(b"Connection: close", got)
        self.assertEqual(self.health(d)["status"], "ok")

    def test_slow_body_and_idle_connections_are_cut(self):
        d = self.start_limited(1024, "header_timeout = 5s\nrequest_timeout = 2s\n"
                               "idle_timeout = 1s\n")
        # A body dribbled a byte per 0.25 s (25 s for its 100 bytes): cut at request_timeout,
        # before it is complete (the order is asserted, not a time).
        s = self.connect(d)
        s.sendall(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        got = b""
        sent = 0
        s.settimeout(0.25)
        while sent < 100 and b"\r\n\r\n" not in got:
            try:
                s.send(b"a")
                sent += 1
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                pass
            except OSError:
                break
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got[:200])
        self.assertLess(sent, 100, "the slow body was read to its end, never cut")
        # A connection that never sends a byte, and one kept alive after an answer: closed
        # after idle_timeout.
        quiet = self.connect(d)
        kept = self.connect(d)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        read_responses(kept, 1)
        # Closed by idle_timeout (1 s), not header_timeout (5 s): a recv timeout of 4 s fails.
        for c in (quiet, kept):
            c.settimeout(4)
            self.assertEqual(c.recv(1), b"")

    def test_all_connections_busy_new_one_gets_503(self):
        """At the cap with every connection waiting on a fetch, nothing can give way: the new
        connection gets 503 with Connection: close, and the daemon goes on."""
        proxy = self.fault_proxy(self.port)
        proxy.set("stall", stall=3)
        leaf = self.leaf(urls=[proxy.url])
        d = self.staplerd(self.ca_file, start=False, timeout="10s")
        text = d.config_text()
        d.config_text = lambda: text.replace(
            "[cache]", "max_connections = 3\nmax_connections_per_client = 100\n[cache]", 1)
        d.start()
        time.sleep(0.3)     # the readiness probe's connection is closed
        pem = leaf.pem()
        busy = []
        for _ in range(3):
            s = self.connect(d)
            s.sendall(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(pem) + pem)
            busy.append(s)
        time.sleep(0.5)
        st, h, b = raw_http(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        self.assertJsonError(st, h, b, 503)
        self.assertEqual(h.get("connection"), "close")
        self.assertIn("date", h)
        for s in busy:
            (r,), _ = read_responses(s, 1, timeout=15)
            self.assertEqual(r[0], 502)
            s.close()
        self.assertTrue(wait_until(lambda: self.try_health(d), 5))
        lines = [l for l in read_text(d.log).splitlines() if "connection_refused" in l]
        self.assertEqual(len(lines), 1, lines)

    def start_limited(self, nofile, server_extra, hard=None):
        """staplerd under `prlimit --nofile=N` (soft; hard N too unless given), with [server]
        keys added."""
        wrapper = os.path.join(self.tmp, "staplerd-limited")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec prlimit --nofile=%d:%d -- %s \"$@\"\n"
                    % (nofile, hard or nofile, staplerd_binary()))
        os.chmod(wrapper, 0o755)
        old = os.environ.get("STAPLERD")
        os.environ["STAPLERD"] = wrapper
        try:
            d = self.staplerd(self.ca_file, start=False)
            text = d.config_text()
            d.config_text = lambda: text.replace("[cache]", server_extra + "[cache]", 1)
            d.start()
        finally:
            if old is None:
                del os.environ["STAPLERD"]
            else:
                os.environ["STAPLERD"] = old
        return d

    def hold_idle(self, d, n):
        socks = []
        for _ in range(n):
            try:
                socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=2))
            except OSError:
                break
        for s in socks:
            self.addCleanup(s.close)
        return socks

    def assertQuickAndQuiet(self, d, log_events, max_lines):
        pid = d.proc.pid
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(3)
        cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        self.assertLess(cpu, 0.05, "staplerd spins: %.0f%% CPU" % (cpu * 100))
        # The loop is not stuck: it answers (a stuck one fails the 5 s request timeout).
        st, _, body = d.request("GET", "/healthz", timeout=5)
        self.assertEqual(st, 200)
        log = read_text(d.log)
        lines = [l for l in log.splitlines() if any(e in l for e in log_events)]
        self.assertLessEqual(len(lines), max_lines, "\n".join(lines[:20]))
        return json.loads(body)

    def test_more_idle_connections_than_the_cap(self):
        """Under a 256-descriptor limit the cap is sized below it; 300 idle connections later
        a fresh client is still answered at once, nothing spins, the log stays quiet."""
        d = self.start_limited(256, "max_connections_per_client = 100000\n")
        self.assertIn("max_connections=", read_text(d.log))
        cap = int(read_text(d.log).split("max_connections=")[1].split()[0])
        self.assertLess(cap, 256)
        socks = self.hold_idle(d, 300)
        self.assertEqual(len(socks), 300)
        h = self.assertQuickAndQuiet(d, ("accept_failed", "connection_refused"), 3)
        self.assertLessEqual(h["connections"], cap)

    def test_soft_descriptor_limit_is_raised_and_sizes_the_cap(self):
        d = self.start_limited(256, "", hard=4096)
        with open("/proc/%d/limits" % d.proc.pid) as f:
            line = [l for l in f if l.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], ["4096", "4096"], line)
        cap = int(read_text(d.log).split("max_connections=")[1].split()[0])
        # 64 kept free, and two per upstream transfer (max_parallel = 16 in the harness).
        self.assertEqual(cap, 4096 - 64 - 2 * 16)

    def test_descriptor_exhaustion_backs_off(self):
        """A cap above the descriptor limit: accept() fails with EMFILE; staplerd pauses
        accepting instead of spinning and logs it once per interval."""
        d = self.start_limited(256, "max_connections = 5000\nmax_connections_per_client = 100000\n"
                               "idle_timeout = 2s\n")
        self.hold_idle(d, 400)
        pid = d.proc.pid
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(1.5)
        cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        self.assertLess(cpu, 0.2, "staplerd spins on EMFILE: %.0f%% CPU" % (cpu * 100))
        lines = [l for l in read_text(d.log).splitlines() if "accept_failed" in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 2, "\n".join(lines[:10]))
        # The idle connections time out; then new clients are served again.
        self.assertTrue(wait_until(lambda: self.try_health(d), 10), read_text(d.log)[-2000:])

    def try_health(self, d):
        try:
            return d.request("GET", "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def test_connections_per_client_are_capped(self):
        """One address holds at most max_connections_per_client: its oldest idle connection
        gives way to its newest, so it cannot crowd others out, and its new requests work."""
        d = self.start_limited(256, "max_connections_per_client = 20\n")
        socks = self.hold_idle(d, 40)
        h = self.assertQuickAndQuiet(d, ("accept_failed",), 0)
        self.assertLessEqual(h["connections"], 20)
        closed = 0
        for s in socks[:20]:
            s.settimeout(1)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except OSError:
                closed += 1
        self.assertEqual(closed, 20)

    def test_client_that_leaves_during_a_stalled_fetch(self):
        """The socket is closed at once (no CLOSE_WAIT), the wait is cancelled, and so is the
        fetch that nobody waits for any more."""
        proxy = self.fault_proxy(self.port)
        proxy.set("stall", stall=8)
        leaf = self.leaf(urls=[proxy.url])
        d = self.staplerd(self.ca_file, timeout="10s")
        clients = []
        for _ in range(5):
            s = self.connect(d)
            pem = leaf.pem()
            s.sendall(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(pem) + pem)
            clients.append(s)
        self.assertTrue(wait_until(lambda: self.health(d)["waiting_clients"] == 5, 5))
        for s in clients:
            s.close()
        self.assertTrue(wait_until(lambda: self.health(d)["waiting_clients"] == 0, 1),
                        self.health(d))

        def close_wait():
            out = subprocess.run(["ss", "-tanH", "state", "close-wait"], stdout=subprocess.PIPE,
                                 text=True, timeout=10).stdout
            return [l for l in out.splitlines() if ":%d " % d.port in l + " "]
        self.assertTrue(wait_until(lambda: not close_wait(), 1), close_wait())
        # Nobody waits for the fetch any more: it is cancelled, its upstream slot freed.
        self.assertTrue(wait_until(lambda: self.health(d)["fetching"] == 0, 1), self.health(d))
        self.assertEqual(self.health(d)["fetch_queue"], 0)

    def test_hits_are_served_while_draining(self):
        """After SIGTERM, while a client's stalled fetch holds the drain, requests in progress
        at the stop (idle connections are closed at once) still get cached staples (with
        Connection: close), one that would need an upstream gets 503 and reaches nothing, and
        the stop exits 0."""
        import signal
        proxy = self.fault_proxy(self.port)
        cached = self.leaf("cached", "2001", urls=[proxy.url])
        stalled = self.leaf("stalled", "2002", urls=[proxy.url])
        fresh = self.leaf("fresh", "2003", urls=[proxy.url])
        self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra="[server]\ndrain_timeout = 8s\n")
        st, _, want = d.staple(cached.pem(), PEM)
        self.assertEqual(st, 200)
        keep = [self.connect(d), self.connect(d)]           # opened before the stop
        for k in keep:
            k.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_responses(k, 1)[0][0][0], 200)
        proxy.set("stall", stall=3)
        waiter = self.connect(d)

        pem = stalled.pem()
        waiter.sendall(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                       % len(pem) + pem)
        self.assertTrue(wait_until(lambda: self.health(d)["waiting_clients"] == 1, 5))
        bodies = [cached.pem(), fresh.pem()]
        for k, pem in zip(keep, bodies):        # the heads begin before the stop...
            k.sendall(b"POST /v1/staple HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        os.kill(d.proc.pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: "event=stopping" in read_text(d.log), 5))
        for k, pem in zip(keep, bodies):        # ...and end after it
            k.sendall(b"Content-Length: %d\r\n\r\n" % len(pem) + pem)
        (st, h, got), = read_responses(keep[0], 1)[0]
        self.assertEqual((st, got), (200, want))
        self.assertEqual(h.get("connection"), "close")
        (st, h, _), = read_responses(keep[1], 1)[0]
        self.assertEqual((st, h.get("connection")), (503, "close"))
        (st, _, _), = read_responses(waiter, 1, timeout=15)[0]     # its upstream never answers
        self.assertEqual(st, 502)
        self.assertEqual(d.proc.wait(timeout=15), 0)
        d.proc = None
        # The first staple and the stalled fetch; the miss during the drain reached nothing.
        self.assertEqual(proxy.count, 2, proxy.requests)


if __name__ == "__main__":
    unittest.main()
