"""Scale-out on engines that already exist (docs/contract.md §5, §10; docs/operations.md "Scale-out"):

(a) nginx's proxy_cache in front of GET /ocsp/ answers repeated requests itself and revalidates
    with the staple's ETag (304);
(b) edge staplerds whose [responders] point at a central staplerd's /ocsp cost the CA's
    responder one fetch per certificate;
(c) independent staplerds behind HAProxy checked on /healthz: one stopping takes nothing down.

Every configuration is read from examples/scaleout/, the files docs/operations.md shows; the
tests only replace addresses, paths and timings (each replaced string must be present, so the
examples cannot drift from what is tested). Black-box: staplerd is reached over HTTP only
(and staplerctl over its admin socket).

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import base64
import calendar
import email.utils
import http.client
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PEM, IntegrationTestCase, LoopbackHTTPServer, OPENSSL, START_TIMEOUT,
                     Staplerd, free_port, http_request, read_text, response_text, run, staplerd_binary,
                     stop_process, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples", "scaleout")
NGINX = os.environ.get("NGINX", "nginx")
HAPROXY = os.environ.get("HAPROXY", "haproxy")
# The placeholder issuer key hash of edge.conf and central.conf.
EXAMPLE_HASH = "5C0E8A4B1F2D3C4B5A69788796A5B4C3D2E1F001"


def staplerctl_binary():
    return os.environ.get("STAPLERCTL") or os.path.join(HERE, "..", "..", "build", "staplerctl")


def example(name, replacements):
    """The text of examples/scaleout/name with each old string replaced (all occurrences);
    fails when one is missing, i.e. when the example changed under the test."""
    with open(os.path.join(EXAMPLES, name)) as f:
        text = f.read()
    for old, new in replacements:
        if old not in text:
            raise AssertionError("examples/scaleout/%s no longer contains %r" % (name, old))
        text = text.replace(old, new)
    return text


def ini_sections(text):
    """{section: [(key, value)]} of a staplerd.conf fragment (comments dropped)."""
    out, section = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in ";#":
            continue
        if s.startswith("["):
            section = s.strip("[]")
            out.setdefault(section, [])
            continue
        k, _, v = s.partition("=")
        out[section].append((k.strip(), v.split(" ;")[0].strip()))
    return out


def staplerd_args(text):
    """Staplerd(...) keyword arguments for a staplerd.conf fragment of the examples: the
    [upstream] allow value and the [responders] section ([trust] ca_file is the test's)."""
    kw, extra = {}, ""
    for section, items in ini_sections(text).items():
        for k, v in items:
            if section == "upstream" and k == "allow":
                kw["allow"] = v
            elif section == "responders":
                extra += "%s = %s\n" % (k, v)
            elif section == "limits" and k == "trusted_clients":
                kw.setdefault("limits", "")
                kw["limits"] += "%s = %s\n" % (k, v)
            elif not (section == "trust" and k == "ca_file"):
                raise AssertionError("the test does not apply [%s] %s of the example" % (section, k))
    limits = kw.pop("limits", "")
    if extra or limits:
        kw["extra"] = ("[limits]\n" + limits if limits else "") + (
            "[responders]\n" + extra if extra else "")
    return kw


def ocsp_get_path(issuer, cert, workdir):
    """GET /ocsp/{url-encoded base64 OCSPRequest} for cert, as an RFC 5019 client sends it."""
    req = os.path.join(workdir, "req-%s.der" % cert.name)
    run([OPENSSL, "ocsp", "-issuer", issuer.cert, "-cert", cert.cert, "-no_nonce",
         "-reqout", req])
    with open(req, "rb") as f:
        b64 = base64.b64encode(f.read()).decode()
    return "/ocsp/" + urllib.parse.quote(b64, safe="")


def wait_port(port, timeout=START_TIMEOUT, proc=None, log=None):
    """Waits until something answers HTTP on port (for nginx and HAProxy: never `openssl ocsp`,
    see harness.OcspResponder)."""
    def probe():
        if proc is not None and proc.poll() is not None:
            raise AssertionError("exited with %d:\n%s" % (proc.returncode, read_text(log, 4000)))
        try:
            http_request(port, "GET", "/", timeout=0.5)
            return True
        except OSError:
            return False
    if not wait_until(probe, timeout, interval=0.05):
        raise AssertionError("nothing answers on port %d after %ds:\n%s"
                             % (port, timeout, read_text(log, 4000)))


# --------------------------------------------------------------------------------------------
# A tap between nginx and staplerd: forwards every request with its headers and records what
# staplerd was asked and what it answered.

class Tap(LoopbackHTTPServer):
    HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
           "proxy-connection", "host", "content-length"}

    def __init__(self, upstream_port):
        tap = self
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.seen = []              # (path, If-None-Match or None, status, ETag or None)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self, body=None):
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in tap.HOP}
                hdrs["Connection"] = "close"
                try:
                    st, rh, data = http_request(tap.upstream_port, self.command, self.path,
                                                body=body, headers=hdrs, timeout=15)
                except OSError:
                    self.send_error(502)
                    return
                with tap.lock:
                    tap.seen.append((self.path, self.headers.get("If-None-Match"), st,
                                     rh.get("etag")))
                self.send_response(st)
                for k, v in rh.items():
                    if k not in tap.HOP:
                        self.send_header(k, v)
                if st != 304:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if st != 304:
                    self.wfile.write(data)

            def do_POST(self):
                self.do_GET(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        super().__init__(Handler)

    def requests(self):
        with self.lock:
            return list(self.seen)


# --------------------------------------------------------------------------------------------
# nginx and HAProxy, started in the foreground with a temporary configuration, stopped by PID

class Nginx:
    def __init__(self, dir, staplerd_port, ttl="3s"):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(dir, "error.log")
        self.cache = os.path.join(dir, "cache")
        snippet = os.path.join(dir, "staplerd-ocsp.conf")
        with open(snippet, "w") as f:
            f.write(example("nginx-ocsp-cache.conf", [
                ("listen 80;", "listen 127.0.0.1:%d;" % self.port),
                ("server 127.0.0.1:8080;", "server 127.0.0.1:%d;" % staplerd_port),
                ("/var/cache/nginx/staplerd-ocsp", self.cache),
                ("proxy_cache_valid 200 304 60s;", "proxy_cache_valid 200 304 %s;" % ttl)]))
        # What /etc/nginx/nginx.conf provides around the snippet, kept inside dir.
        self.conf = os.path.join(dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n"
                    "pid %(d)s/nginx.pid;\nerror_log %(d)s/error.log info;\n"
                    "events { worker_connections 64; }\n"
                    "http {\n  access_log %(d)s/access.log;\n"
                    "  client_body_temp_path %(d)s/body;\n  proxy_temp_path %(d)s/proxy;\n"
                    "  fastcgi_temp_path %(d)s/fastcgi;\n  uwsgi_temp_path %(d)s/uwsgi;\n"
                    "  scgi_temp_path %(d)s/scgi;\n  include %(s)s;\n}\n"
                    % {"d": dir, "s": snippet})
        self.proc = None

    def start(self):
        run([NGINX, "-t", "-e", self.log, "-p", self.dir, "-c", self.conf])
        logf = open(os.path.join(self.dir, "stderr.log"), "ab")
        try:
            self.proc = subprocess.Popen([NGINX, "-e", self.log, "-p", self.dir, "-c", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        finally:
            logf.close()
        wait_port(self.port, proc=self.proc, log=self.log)
        return self

    def get(self, path, headers=None):
        return http_request(self.port, "GET", path, headers=headers, timeout=20)

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.proc = None


class Haproxy:
    def __init__(self, dir, backend_ports, inter="200ms"):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(dir, "haproxy.log")
        # A Unix socket path has at most 97 bytes for HAProxy: not under a deep build tree.
        self.stats_dir = tempfile.mkdtemp(prefix="haproxy-", dir="/tmp")
        self.stats = os.path.join(self.stats_dir, "stats.sock")
        self.cfg = os.path.join(dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(example("haproxy.cfg", [
                ("\nglobal\n", "\nglobal\n    stats socket %s mode 600 level admin\n" % self.stats),
                ("bind :8080", "bind 127.0.0.1:%d" % self.port),
                ("staplerd1 10.0.0.11:8080", "staplerd1 127.0.0.1:%d" % backend_ports[0]),
                ("staplerd2 10.0.0.12:8080", "staplerd2 127.0.0.1:%d" % backend_ports[1]),
                ("inter 1s", "inter %s" % inter)]))
        self.proc = None

    def start(self):
        run([HAPROXY, "-c", "-f", self.cfg])
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        finally:
            logf.close()
        wait_port(self.port, proc=self.proc, log=self.log)
        return self

    def server_status(self, name):
        """The check status of one server from the stats socket: UP, DOWN, "UP 1/2", ..."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.stats)
            s.sendall(b"show stat\n")
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        lines = buf.decode().splitlines()
        cols = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            f = line.split(",")
            if len(f) == len(cols) and f[0] == "staplerd" and f[1] == name:
                return f[cols.index("status")]
        raise AssertionError("no server %s in:\n%s" % (name, buf.decode()))

    def wait_status(self, name, want, timeout=5):
        got = wait_until(lambda: self.server_status(name) == want, timeout, interval=0.05)
        last = self.server_status(name)
        if not got:
            raise AssertionError("HAProxy: %s is %r after %ds, expected %r:\n%s"
                                 % (name, last, timeout, want, read_text(self.log, 3000)))

    def staple(self, body):
        return http_request(self.port, "POST", "/v1/staple", body=body,
                            headers={"Content-Type": PEM}, timeout=20)

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.proc = None
        shutil.rmtree(self.stats_dir, ignore_errors=True)


def http_time(s):
    return calendar.timegm(email.utils.parsedate(s))


class ScaleoutTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.inter = self.pki.intermediate(self.root, "intermediate")
        self.pki.responder(self.inter)
        self.up_port = free_port()
        self.fwd = self.forwarder(self.up_port)         # counts what reaches the CA
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def leaf(self, name):
        return self.pki.leaf(self.inter, name, ocsp_urls=[self.fwd.url])

    def start_responder(self):
        self.resp = self.responder(self.inter, port=self.up_port, ndays=30)

    def instance(self, name, ca_file, **kw):
        """One more staplerd, in a directory of its own; stopped (exit 0 checked) in cleanup."""
        d = Staplerd(os.path.join(self.tmp, name), ca_file, **kw)
        os.makedirs(d.dir, exist_ok=True)
        self._logs.append(d.log)
        self.addCleanup(self._stop_staplerd, d)
        return d.start()

    def chain(self, leaf):
        return leaf.pem() + self.inter.pem()

    def assertServes(self, status, headers, body, leaf, expect="good"):
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(headers.get("content-type"), "application/ocsp-response")
        self.assertStapleVerifies(body, self.inter, self.root.cert, leaf, status=expect)

    # ----------------------------------------------------------------------------------------
    # (a) nginx proxy_cache in front of GET /ocsp/

    def start_nginx(self):
        self.start_responder()
        self.d = self.instance("staplerd", self.ca_file)
        self.tap = Tap(self.d.port).start()
        self.addCleanup(self.tap.stop)
        self.nginx = Nginx(os.path.join(self.tmp, "nginx"), self.tap.port)
        self._logs.append(self.nginx.log)
        self.addCleanup(self.nginx.stop)
        self.nginx.start()

    def test_nginx_answers_repeats_and_revalidates_with_etag(self):
        leaf = self.leaf("meter")
        self.start_nginx()
        # The head-end's submission teaches staplerd the issuer and fills its cache.
        st, _, staple = self.d.staple(self.chain(leaf), PEM)
        self.assertServes(st, {"content-type": "application/ocsp-response"}, staple, leaf)
        self.assertEqual(self.fwd.count, 1)
        path = ocsp_get_path(self.inter, leaf, self.tmp)

        # Repeats within the TTL (3 s here) are nginx's alone (timed checks come after).
        first = self.nginx.get(path)
        repeats = [self.nginx.get(path) for _ in range(5)]
        self.assertEqual(len(self.tap.requests()), 1, self.tap.requests())
        st, h, body = first
        self.assertEqual(h.get("x-cache-status"), "MISS")
        self.assertServes(st, h, body, leaf)
        self.assertEqual(body, staple)
        etag = h["etag"]
        self.assertRegex(etag, r'^"[0-9A-Fa-f]{32}"$')
        for st, hr, body in repeats:
            self.assertEqual((st, hr.get("x-cache-status"), hr.get("etag")), (200, "HIT", etag))
            self.assertEqual(body, staple)

        # staplerd's RFC 5019 headers reach the client through nginx.
        text = response_text(staple, self.tmp)
        next_update = http_time(h["expires"])
        self.assertEqual(http_time(h["last-modified"]),
                         http_time(re.search(r"This Update: (.*)", text).group(1).strip()))
        self.assertEqual(next_update,
                         http_time(re.search(r"Next Update: (.*)", text).group(1).strip()))
        cc = [p.strip() for p in h["cache-control"].split(",")]
        self.assertEqual(set(cc[1:]), {"public", "no-transform", "must-revalidate"})
        max_age = int(cc[0].split("=")[1])
        self.assertGreater(max_age, 0)
        self.assertLessEqual(time.time() + max_age, next_update)

        # Past the TTL nginx asks again, conditionally, and staplerd's 304 renews the copy.
        def not_hit():
            status = self.nginx.get(path)[1].get("x-cache-status")
            return None if status == "HIT" else status
        self.assertEqual(wait_until(not_hit, 10, interval=0.2), "REVALIDATED")
        seen = self.tap.requests()
        self.assertEqual(len(seen), 2, seen)
        self.assertEqual(seen[1][1:], (etag, 304, etag))
        st, h, body = self.nginx.get(path)
        self.assertEqual((st, h.get("x-cache-status")), (200, "HIT"))
        self.assertEqual(body, staple)
        self.assertEqual(len(self.tap.requests()), 2)
        self.assertEqual(self.fwd.count, 1)

        # POST /ocsp passes through, uncached.
        with open(os.path.join(self.tmp, "req-%s.der" % leaf.name), "rb") as f:
            req = f.read()
        for _ in range(2):
            st, h, body = http_request(self.nginx.port, "POST", "/ocsp", body=req, headers={
                "Content-Type": "application/ocsp-request"})
            self.assertEqual((st, body), (200, staple))
            self.assertNotIn("x-cache-status", h)
        self.assertEqual([r[0] for r in self.tap.requests()[2:]], ["/ocsp", "/ocsp"])

        # A revocation staplerd learns reaches nginx's clients within the TTL.
        # `openssl ocsp` rereads its index on restart; a new port (and log) for the new one,
        # so that its readiness is not read from the old one's log.
        self.resp.stop()
        self.inter.revoke(leaf)
        self.up_port = self.fwd.upstream_port = free_port()
        self.start_responder()
        p = run([staplerctl_binary(), "-c", self.d.conf, "refresh", leaf.serial], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        def revoked():
            st, h, body = self.nginx.get(path)
            return (st, h, body) if "revoked" in response_text(body, self.tmp) else None
        got = wait_until(revoked, 10, interval=0.2)
        self.assertTrue(got, "nginx still serves the good staple")
        st, h, body = got
        self.assertServes(st, h, body, leaf, expect="revoked")
        self.assertNotEqual(h["etag"], etag)
        last = self.tap.requests()[-1]
        self.assertEqual((last[1], last[2]), (etag, 200))

    def test_nginx_keeps_no_status_answer(self):
        # unauthorized (an issuer staplerd does not serve) carries no ETag: never cached.
        other = self.pki.root("other-root")
        stranger = self.pki.leaf(other, "stranger", ocsp_urls=[self.fwd.url])
        self.start_nginx()
        path = ocsp_get_path(other, stranger, self.tmp)
        for _ in range(3):
            st, h, body = self.nginx.get(path)
            self.assertEqual(st, 200)
            self.assertEqual(body, bytes.fromhex("30030a0106"))      # unauthorized
            self.assertNotEqual(h.get("x-cache-status"), "HIT")
        self.assertEqual(len(self.tap.requests()), 3)
        self.assertEqual(self.fwd.count, 0)

    def test_max_age_ends_by_the_next_refresh(self):
        """max-age runs to the entry's next refresh, not to nextUpdate - 60 s (about 30 days
        here): a cache that honours Cache-Control (nginx's default, a CDN) revalidates once
        staplerd could have learned better, and never serves a "good" staple for days after
        staplerd has refreshed it to "revoked" (as boulder bounds it by its update interval)."""
        leaf = self.leaf("meter")
        self.start_responder()
        d = self.instance("staplerd", self.ca_file)
        self.assertEqual(d.staple(self.chain(leaf), PEM)[0], 200)
        st, h, _ = d.request("GET", ocsp_get_path(self.inter, leaf, self.tmp))
        self.assertEqual(st, 200)
        max_age = int(h["cache-control"].split(",")[0].split("=")[1])
        row = d.wait_rows(1, "WHERE serial = ?", (leaf.serial,))[0]
        self.assertLessEqual(time.time() + max_age, row["next_refresh_at"] + 5)

    # ----------------------------------------------------------------------------------------
    # (b) edges tiered over a central staplerd

    def central_from_example(self):
        """The central of examples/scaleout/central.conf: the intermediate in its bundle, the
        CA's responder (behind the counting forwarder) in its [responders]."""
        text = example("central.conf", [(EXAMPLE_HASH, self.inter.key_hash()),
                                        ("http://ocsp.ca.example.com/", self.fwd.url),
                                        ("ocsp.ca.example.com", "127.0.0.1"),
                                        ("10.0.0.11 10.0.0.12 10.0.0.13", "127.0.0.1")])
        bundle = self.pki.bundle("central-bundle.pem", self.root, self.inter)
        return self.instance("central", bundle, **staplerd_args(text))

    def edges(self, central, n=3, fallback=None):
        url = "http://127.0.0.1:%d/ocsp" % central.port
        if fallback:
            url += " " + fallback
        text = example("edge.conf", [
            (EXAMPLE_HASH, self.inter.key_hash()),
            ("http://staplerd-central.example.net:8080/ocsp", url),
            ("staplerd-central.example.net", "127.0.0.1")])
        return [self.instance("edge%d" % i, self.ca_file, **staplerd_args(text))
                for i in range(1, n + 1)]

    def central_staple(self, central, leaf):
        return bytes(central.wait_rows(1, "WHERE serial = ?", (leaf.serial,))[0]["response_der"])

    def test_edges_cost_the_upstream_one_fetch_per_certificate(self):
        a, b = self.leaf("meter-a"), self.leaf("meter-b")
        self.start_responder()
        central = self.central_from_example()
        edges = self.edges(central)

        # One after the other: the first edge's miss fills the central, the others hit it.
        staples = []
        for e in edges:
            st, h, body = e.staple(self.chain(a), PEM)
            self.assertServes(st, h, body, a)
            staples.append(body)
        self.assertEqual(self.fwd.count, 1)
        self.assertEqual(staples, [self.central_staple(central, a)] * 3)
        for e in edges:
            row = e.wait_rows(1, "WHERE serial = ?", (a.serial,))[0]
            self.assertEqual(row["ocsp_url"], "http://127.0.0.1:%d/ocsp" % central.port)

        # All at once: the central coalesces the edges' misses into one fetch.
        results = [None] * len(edges)

        def submit(i):
            results[i] = edges[i].staple(self.chain(b), PEM)
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(edges))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for st, h, body in results:
            self.assertServes(st, h, body, b)
            self.assertEqual(body, self.central_staple(central, b))
        self.assertEqual(self.fwd.count, 2)

        # A further client of an edge is answered by that edge alone.
        st, h, body = edges[0].staple(self.chain(b), PEM)
        self.assertServes(st, h, body, b)
        self.assertEqual(self.fwd.count, 2)

    def test_central_must_know_the_issuer(self):
        # A central that has neither seen the issuer nor has it in its bundle answers the
        # edges "unauthorized": their clients get 502 and the CA is not contacted.
        a, b = self.leaf("meter-a"), self.leaf("meter-b")
        self.start_responder()
        # The edges are trusted clients of the central (examples/scaleout/central.conf).
        central = self.instance("central", self.ca_file,
                                extra="[limits]\ntrusted_clients = 127.0.0.1\n")
        edge1, edge2 = self.edges(central, n=2)
        st, _, body = edge1.staple(self.chain(a), PEM)
        self.assertEqual(st, 502, body[:300])
        self.assertEqual(self.fwd.count, 0)

        # Seeding: one certificate of that issuer submitted to the central teaches it the
        # issuer and where to ask (the certificate's AIA URL).
        st, h, body = central.staple(self.chain(a), PEM)
        self.assertServes(st, h, body, a)
        self.assertEqual(self.fwd.count, 1)
        for e in (edge2, edge1):
            for leaf in (a, b):
                st, h, got = e.staple(self.chain(leaf), PEM)
                self.assertServes(st, h, got, leaf)
                self.assertEqual(got, self.central_staple(central, leaf))
        self.assertEqual(self.fwd.count, 2)

    def test_edge_falls_back_to_the_ca_after_the_central(self):
        # With the CA's own responder listed after the central, an edge still staples when the
        # central cannot answer: here it does not know the issuer, then it is stopped.
        a, b = self.leaf("meter-a"), self.leaf("meter-b")
        self.start_responder()
        central = self.instance("central", self.ca_file)
        edge, = self.edges(central, n=1, fallback=self.fwd.url)
        self.assertServes(*edge.staple(self.chain(a), PEM), a)
        self.assertEqual(self.fwd.count, 1)
        self.assertEqual(central.stop(), 0)
        self.assertServes(*edge.staple(self.chain(b), PEM), b)
        self.assertEqual(self.fwd.count, 2)
        self.assertEqual(edge.wait_rows(1, "WHERE serial = ?", (b.serial,))[0]["ocsp_url"],
                         self.fwd.url)

    # ----------------------------------------------------------------------------------------
    # (c) independent instances behind HAProxy, checked on /healthz

    def test_haproxy_takes_a_stopped_instance_out(self):
        leaf = self.leaf("meter")
        self.start_responder()
        backends = [self.instance("staplerd%d" % i, self.ca_file) for i in (1, 2)]
        lb = Haproxy(os.path.join(self.tmp, "haproxy"), [d.port for d in backends])
        self._logs.append(lb.log)
        self.addCleanup(lb.stop)
        lb.start()
        lb.wait_status("staplerd1", "UP")
        lb.wait_status("staplerd2", "UP")

        for _ in range(4):
            self.assertServes(*lb.staple(self.chain(leaf)), leaf)
        # Round robin reached both, and each independent instance fetched once.
        for d in backends:
            d.wait_rows(1, "WHERE serial = ?", (leaf.serial,))
        self.assertEqual(self.fwd.count, 2)

        self.assertEqual(backends[0].stop(), 0)
        for _ in range(10):
            self.assertServes(*lb.staple(self.chain(leaf)), leaf)
        lb.wait_status("staplerd1", "DOWN")
        self.assertEqual(lb.server_status("staplerd2"), "UP")
        for _ in range(4):
            self.assertServes(*lb.staple(self.chain(leaf)), leaf)
        self.assertEqual(self.fwd.count, 2)

        # Started again (its cache is warm from its database), it is taken back.
        backends[0].start()
        lb.wait_status("staplerd1", "UP")
        for _ in range(4):
            self.assertServes(*lb.staple(self.chain(leaf)), leaf)
        self.assertEqual(self.fwd.count, 2)

    def test_haproxy_keeps_serving_while_an_instance_drains(self):
        # A client of staplerd1 waits for a fetch from a stalled responder, so SIGTERM makes
        # staplerd1 drain (it answers that client, then exits). Meanwhile a head-end keeps one
        # keep-alive connection to HAProxy, and every one of its requests must succeed.
        leaf = self.leaf("meter")
        stall = self.fault_proxy(self.up_port)
        stall.set("stall", stall=30)
        slow = self.pki.leaf(self.inter, "slow", ocsp_urls=[stall.url])
        self.start_responder()
        backends = [self.instance("staplerd%d" % i, self.ca_file) for i in (1, 2)]
        lb = Haproxy(os.path.join(self.tmp, "haproxy"), [d.port for d in backends])
        self._logs.append(lb.log)
        self.addCleanup(lb.stop)
        lb.start()
        lb.wait_status("staplerd1", "UP")
        lb.wait_status("staplerd2", "UP")

        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=20)
        self.addCleanup(conn.close)

        def staple():
            conn.request("POST", "/v1/staple", body=self.chain(leaf),
                         headers={"Content-Type": PEM})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        for _ in range(4):
            self.assertServes(*staple(), leaf)

        waiting = []
        t = threading.Thread(target=lambda: waiting.append(
            backends[0].staple(self.chain(slow), PEM, timeout=30)))
        t.start()
        self.assertTrue(wait_until(lambda: stall.count >= 1, 5), "the slow fetch never started")
        os.kill(backends[0].proc.pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: "event=stopping" in read_text(backends[0].log), 5))
        statuses = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and backends[0].proc.poll() is None:
            st, h, body = staple()
            statuses.append(st)
            self.assertServes(st, h, body, leaf)
        self.assertIsNone(backends[0].proc.poll(), "staplerd1 stopped before the test was done")
        lb.wait_status("staplerd1", "DOWN")
        self.assertGreater(len(statuses), 4)
        t.join(timeout=30)
        self.assertEqual(backends[0].proc.wait(timeout=30), 0)
        backends[0].proc = None


class DocsTest(unittest.TestCase):
    """docs/operations.md shows every example file in full, exactly as the tests run it."""

    def test_docs_show_the_examples(self):
        with open(os.path.join(HERE, "..", "..", "docs", "operations.md")) as f:
            doc = f.read()
        shown = dict(re.findall(r"<!-- examples/scaleout/(\S+) -->\n```\w*\n(.*?)```", doc,
                                re.S))
        self.assertEqual(sorted(shown), sorted(os.listdir(EXAMPLES)))
        for name, text in shown.items():
            with open(os.path.join(EXAMPLES, name)) as f:
                self.assertEqual(text, f.read(), "docs/operations.md shows an older %s" % name)


def setUpModule():
    for b in (staplerd_binary(), staplerctl_binary()):
        if not os.access(b, os.X_OK):
            raise AssertionError("binary not found at %s (set STAPLERD / STAPLERCTL)" % b)
    for tool in (NGINX, HAPROXY):
        if shutil.which(tool) is None:
            raise AssertionError("%s not found: run scripts/deps.sh" % tool)


if __name__ == "__main__":
    unittest.main()
