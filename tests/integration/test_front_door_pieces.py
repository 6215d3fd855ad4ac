"""Requests read the same in any pieces (docs/contract.md §8.10): the real staplerd is sent every route
(POST /v1/staple, POST /v1/staples, POST /ocsp, GET /ocsp/{req}, /healthz, /metrics) with the
head cut at every byte, bodies up to max_request cut at random points, chunked and with
Content-Length, one request per write sequence and pipelined, with small pauses between the
writes so that each piece reaches the daemon as a read of its own, the way a WAN with a
1,500-byte MTU delivers a certificate chain. Every answer must equal the answer to the same
request sent in one write. (Before the fix, a head parsed while its body was still arriving kept
pointers into a read buffer that then moved: 404 in a Release build, use-after-free under ASan.)

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import base64
import json
import os
import random
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, ocsp_url, PEM, read_responses, run,
                     setUpModule)

MAX_REQUEST = 65536
PAUSE = 0.001        # seconds between two writes: each piece is a read of its own

# Headers that follow the clock or the connection, not the request.
VOLATILE = {"date", "cache-control", "connection", "content-length"}


def http_head(method, path, extra=()):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: staplerd.test"] + list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path, body, ctype, chunked=False, rng=None):
    if not chunked:
        return http_head("POST", path, ["Content-Type: " + ctype,
                                         "Content-Length: %d" % len(body)]) + body
    out = []
    at = 0
    while at < len(body):
        n = rng.randint(1, 3000) if rng else 1000
        piece = body[at:at + n]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        at += n
    return (http_head("POST", path, ["Content-Type: " + ctype, "Transfer-Encoding: chunked"])
            + b"".join(out) + b"0\r\n\r\n")


def head_len(req):
    return req.index(b"\r\n\r\n") + 4


def send_pieces(sock, data, cuts):
    """Writes data cut before each offset in cuts (ascending), pausing between the pieces."""
    at = 0
    for c in list(cuts) + [len(data)]:
        if c <= at:
            continue
        sock.sendall(data[at:c])
        at = c
        if at < len(data):
            time.sleep(PAUSE)


def random_cuts(rng, start, end, n):
    """n distinct cut points in (start, end)."""
    if end - start < 2:
        return []
    return sorted(rng.sample(range(start + 1, end), min(n, end - start - 1)))


class PiecesTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.seed = int(os.environ.get("STAPLER_TEST_SEED") or time.time())
        self.rng = random.Random(self.seed)
        root = self.pki.root("root")
        self.pki.responder(root)
        root_port, inter_port = free_port(), free_port()
        inter = self.pki.intermediate(root, ocsp_urls=[ocsp_url(root_port)])
        self.pki.responder(inter)
        self.leaf = self.pki.leaf(inter, "leaf", serial="7001", ocsp_urls=[ocsp_url(inter_port)])
        self.responder(root, port=root_port, ndays=30)
        self.responder(inter, port=inter_port, ndays=30)
        self.d = self.staplerd(self.pki.bundle("ca-bundle.pem", root),
                               max_request="%d" % MAX_REQUEST)
        self.chain = self.leaf.pem() + inter.pem()
        reqfile = os.path.join(self.tmp, "leaf.req")
        run(["openssl", "ocsp", "-issuer", inter.cert, "-cert", self.leaf.cert, "-no_nonce",
             "-reqout", reqfile])
        with open(reqfile, "rb") as f:
            self.ocsp_req = f.read()
        b64 = base64.b64encode(self.ocsp_req).decode()
        self.ocsp_get = "/ocsp/" + b64.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        # Fill the cache once: from here on every route answers from memory, the same each time.
        for name, req in self.requests():
            st, _, body = self.whole(req)
            self.assertEqual(st, 200, "%s: %r" % (name, body[:300]))

    def requests(self, rng=None):
        """(name, bytes) of one request per route and framing; bodies of several sizes, the
        largest exactly max_request (a chain padded with the white space PEM allows)."""
        padded = self.chain + b"\n" * (MAX_REQUEST - len(self.chain))
        mid = self.chain + b" \n" * 3000
        out = [
            ("GET /healthz", http_head("GET", "/healthz")),
            ("GET /metrics", http_head("GET", "/metrics")),
            ("GET /ocsp/{req}", http_head("GET", self.ocsp_get)),
            ("POST /ocsp", post("/ocsp", self.ocsp_req, "application/ocsp-request")),
            ("POST /ocsp chunked", post("/ocsp", self.ocsp_req, "application/ocsp-request",
                                        True, rng)),
            ("POST /v1/staple", post("/v1/staple", self.chain, PEM)),
            ("POST /v1/staple chunked", post("/v1/staple", self.chain, PEM, True, rng)),
            ("POST /v1/staple 6 KB", post("/v1/staple", mid, PEM)),
            ("POST /v1/staple max_request", post("/v1/staple", padded, PEM)),
            ("POST /v1/staple max_request chunked", post("/v1/staple", padded, PEM, True, rng)),
            ("POST /v1/staples", post("/v1/staples", self.chain, PEM)),
            ("POST /v1/staples 6 KB chunked", post("/v1/staples", mid, PEM, True, rng)),
            ("POST /v1/staples max_request", post("/v1/staples", padded, PEM)),
        ]
        return out

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=15)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(s.close)
        return s

    def whole(self, req):
        s = self.connect()
        s.sendall(req)
        (r,), _ = read_responses(s, 1, timeout=15)
        s.close()
        return r

    def comparable(self, name, answer):
        """What must not depend on how the request arrived: the status, the headers that do not
        follow the clock, and the body (for /healthz the JSON keys and status, for /metrics
        the metric names: their values move with every request)."""
        st, hdrs, body = answer
        fixed = sorted((k, v) for k, v in hdrs.items() if k not in VOLATILE)
        if name == "GET /healthz":
            doc = json.loads(body)
            body = (sorted(doc), doc.get("status"))
        elif name == "GET /metrics":
            body = sorted({line.split("{")[0].split(" ")[0]
                           for line in body.decode().splitlines()
                           if line and not line.startswith("#")})
        return st, fixed, body

    def assertSameAnswer(self, name, want, got, how):
        self.assertEqual(self.comparable(name, want), self.comparable(name, got),
                         "%s sent %s (seed %d) differs from the whole request"
                         % (name, how, self.seed))

    # ----------------------------------------------------------------------------------------

    def test_head_split_at_every_byte(self):
        """Each route's head cut at every byte, the rest (body included) in MTU-sized pieces,
        on one keep-alive connection per route: one answer per request, the same as whole."""
        for name, req in self.requests():
            want = self.whole(req)
            s = self.connect()
            hl = head_len(req)
            for k in range(1, hl):
                cuts = [k] + list(range(hl + 1448, len(req), 1448))
                send_pieces(s, req, cuts)
                (got,), rest = read_responses(s, 1, timeout=15)
                self.assertEqual(rest, b"")
                self.assertSameAnswer(name, want, got, "cut at head byte %d" % k)
            s.close()

    def test_bodies_cut_at_random_points(self):
        """Bodies up to max_request, with Content-Length and chunked, cut at random points
        (a few to a few hundred pieces), each request on a fresh connection."""
        for name, req in self.requests(self.rng):
            want = self.whole(req)
            hl = head_len(req)
            for n in (1, 4, 32, 200):
                cuts = random_cuts(self.rng, hl - 1, len(req), n)
                s = self.connect()
                send_pieces(s, req, cuts)
                (got,), rest = read_responses(s, 1, timeout=15)
                self.assertEqual(rest, b"")
                s.close()
                self.assertSameAnswer(name, want, got, "in %d pieces %s" % (len(cuts) + 1,
                                                                           cuts[:8]))

    def test_pipelined_in_pieces(self):
        """Every route's request back to back on one connection, the stream cut at random
        points and byte by byte around each request boundary: the answers come in order, each
        the same as whole."""
        reqs = self.requests(self.rng)
        wants = [self.whole(req) for _, req in reqs]
        stream = b"".join(req for _, req in reqs)
        bounds = []
        at = 0
        for _, req in reqs:
            at += len(req)
            bounds.append(at)
        for attempt in range(4):
            cuts = set(random_cuts(self.rng, 0, len(stream), 60))
            if attempt == 3:
                # A boundary between two requests, and the heads around it, byte by byte.
                for b in bounds[:-1]:
                    cuts.update(range(max(1, b - 8), min(len(stream), b + 40)))
            s = self.connect()
            send_pieces(s, stream, sorted(cuts))
            got, rest = read_responses(s, len(reqs), timeout=30)
            self.assertEqual(rest, b"")
            s.close()
            for (name, _), want, answer in zip(reqs, wants, got):
                self.assertSameAnswer(name, want, answer, "pipelined, attempt %d" % attempt)

    def test_body_over_the_limit_in_pieces(self):
        """One byte over max_request: 413 with the connection closed, whole or in pieces, with
        Content-Length and chunked; the daemon goes on serving."""
        over = self.chain + b"\n" * (MAX_REQUEST + 1 - len(self.chain))
        for chunked in (False, True):
            req = post("/v1/staple", over, PEM, chunked, self.rng)
            hl = head_len(req)
            for cuts in ([], [hl // 2], random_cuts(self.rng, hl - 1, len(req), 40)):
                s = self.connect()
                try:
                    send_pieces(s, req, cuts)
                except OSError:
                    pass        # the daemon answered 413 and closed while we still wrote
                (got,), _ = read_responses(s, 1, timeout=15)
                s.close()
                self.assertEqual(got[0], 413, (chunked, cuts[:5], got))
                self.assertEqual(got[1].get("connection"), "close")
        st, _, body = self.whole(post("/v1/staple", self.chain, PEM))
        self.assertEqual(st, 200, body[:200])


if __name__ == "__main__":
    unittest.main()
