"""Integration test harness: the real staplerd against OpenSSL's own `openssl ocsp`.

Owns the per-test temporary directory, a test PKI built with the openssl CLI at test time,
the upstream responders (`openssl ocsp`, a counting forwarder in front of it, a plain
connection counter) and the staplerd process. Every process is stopped by PID and every wait
is bounded, even when a test fails. Python 3 standard library only.
"""

import base64
import calendar
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

OPENSSL = os.environ.get("OPENSSL", "openssl")
CMD_TIMEOUT = 30          # seconds, for any one short-lived command
START_TIMEOUT = 10        # seconds, for a server to become ready
STOP_TIMEOUT = 10         # seconds, for a server to exit after SIGTERM


# --------------------------------------------------------------------------------------------
# Small helpers

def run(args, cwd=None, check=True, timeout=CMD_TIMEOUT, input=None):
    """Runs a command with a time bound; returns the CompletedProcess (text output)."""
    p = subprocess.run(args, cwd=cwd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, text=True)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout: %s\nstderr: %s"
                             % (p.returncode, " ".join(args), p.stdout, p.stderr))
    return p


def free_port():
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_request(port, method, path, body=None, headers=None, timeout=10, host="127.0.0.1"):
    """One HTTP request on a fresh connection. Returns (status, headers, body): headers is a
    dict with lowercased names, body is bytes."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, hdrs, data
    finally:
        conn.close()


def raw_http(port, data, timeout=10, host="127.0.0.1"):
    """Sends raw request bytes (tolerating the server closing early, as it may on a body that
    is too large) and returns (status, headers, body) of the answer, or raises OSError when
    no status line arrived."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                if buf:
                    break
                raise
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                hdrs = {}
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.decode("latin-1").partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                n = hdrs.get("content-length")
                if n is not None and len(body) >= int(n):
                    break
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise OSError("no HTTP status line in %r" % buf[:200])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(parts[1]), hdrs, body


def read_responses(sock, n, heads=(), timeout=10):
    """Reads n responses from sock; heads: indexes of responses to HEAD requests (no body
    whatever Content-Length says). Returns [(status, headers, body)]; raises when the bytes
    are not n well-formed responses."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = buf[:head_end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise AssertionError("not a status line: %r" % lines[0])
            hdrs = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if not sep:
                    raise AssertionError("not a header line: %r" % line)
                hdrs[k.strip().lower()] = v.strip()
            status = int(parts[1])
            length = 0 if len(out) in heads or status in (204, 304) else int(
                hdrs.get("content-length", "0"))
            if len(buf) >= head_end + 4 + length:
                out.append((status, hdrs, buf[head_end + 4:head_end + 4 + length]))
                buf = buf[head_end + 4 + length:]
                continue
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %d responses; have %r" % (len(out), buf[:300]))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("closed after %d responses; rest %r" % (len(out), buf[:300]))
        buf += chunk
    return out, buf


def read_text(path, limit=None):
    try:
        with open(path, "r", errors="replace") as f:
            data = f.read()
    except OSError:
        return ""
    if limit is not None and len(data) > limit:
        data = "...\n" + data[-limit:]
    return data


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until it returns a true value or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Stops one process by PID: sig, bounded wait, then SIGKILL. Returns the exit code
    (negative for a signal), or None when it had to be killed."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        return None


# --------------------------------------------------------------------------------------------
# DER: just enough to find the subjectPublicKey of a certificate (for the CertID key hash)

def _der_read(buf, pos):
    """Returns (tag, content_start, content_end) of the DER element at pos."""
    tag = buf[pos]
    pos += 1
    length = buf[pos]
    pos += 1
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + length


def _der_children(buf, start, end):
    out = []
    pos = start
    while pos < end:
        tag, cs, ce = _der_read(buf, pos)
        out.append((tag, cs, ce))
        pos = ce
    return out


def subject_name_der(cert_der):
    """The DER of a certificate's subject Name (what issuerNameHash hashes)."""
    _, cs, ce = _der_read(cert_der, 0)
    tbs = _der_children(cert_der, cs, ce)[0]
    pos = tbs[1]
    fields = []
    while pos < tbs[2]:
        start = pos
        _, _, end = _der_read(cert_der, pos)
        fields.append((start, end))
        pos = end
    if cert_der[fields[0][0]] == 0xA0:
        fields = fields[1:]
    start, end = fields[4]                      # serial sig issuer validity subject
    return cert_der[start:end]


def spki_key(cert_der):
    _, cs, ce = _der_read(cert_der, 0)
    tbs = _der_children(cert_der, cs, ce)[0]
    fields = _der_children(cert_der, tbs[1], tbs[2])
    if fields[0][0] == 0xA0:
        fields = fields[1:]
    spki = fields[5]
    _, bits = _der_children(cert_der, spki[1], spki[2])
    return cert_der[bits[1] + 1:bits[2]]


def spki_key_hash(cert_der):
    """SHA-1 of the subjectPublicKey BIT STRING value (RFC 6960 issuerKeyHash), uppercase hex."""
    import hashlib
    _, cs, ce = _der_read(cert_der, 0)                      # Certificate
    tbs = _der_children(cert_der, cs, ce)[0]                # TBSCertificate
    fields = _der_children(cert_der, tbs[1], tbs[2])
    if fields[0][0] == 0xA0:                                # [0] version
        fields = fields[1:]
    spki = fields[5]                                        # serial sig issuer validity subject spki
    alg, bits = _der_children(cert_der, spki[1], spki[2])
    assert bits[0] == 0x03
    key = cert_der[bits[1] + 1:bits[2]]                     # skip the unused-bits octet
    return hashlib.sha1(key).hexdigest().upper()


# --------------------------------------------------------------------------------------------
# Test PKI, generated with the openssl CLI (EC P-256)

_REQ_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""


class Cert:
    """A certificate and its key on disk."""

    def __init__(self, name, cert, key, subject, issuer=None):
        self.name = name
        self.cert = cert            # PEM path
        self.key = key              # PEM path
        self.subject = subject      # "/CN=..."
        self.issuer = issuer        # issuing CA (a CA object), None for a root
        self._serial = None

    def pem(self):
        with open(self.cert, "rb") as f:
            return f.read()

    def der(self):
        return base64.b64decode(b"".join(
            l for l in self.pem().splitlines() if l and not l.startswith(b"-----")))

    @property
    def serial(self):
        """Uppercase hex, exactly as `openssl x509 -noout -serial` prints it."""
        if self._serial is None:
            out = run([OPENSSL, "x509", "-in", self.cert, "-noout", "-serial"]).stdout.strip()
            assert out.startswith("serial="), out
            self._serial = out[len("serial="):]
        return self._serial

    def not_after(self):
        """notAfter as Unix seconds."""
        out = run([OPENSSL, "x509", "-in", self.cert, "-noout", "-enddate"]).stdout.strip()
        s = out.split("=", 1)[1]
        return calendar.timegm(time.strptime(s, "%b %d %H:%M:%S %Y GMT"))

    def key_hash(self):
        """SHA-1 of this certificate's public key: the issuerKeyHash of certs it issues."""
        return spki_key_hash(self.der())


class CA(Cert):
    """A CA with an `openssl ocsp` index of the certificates it issued."""

    def __init__(self, name, cert, key, subject, issuer, dir):
        super().__init__(name, cert, key, subject, issuer)
        self.dir = dir
        self.index = os.path.join(dir, "index.txt")
        self.entries = []           # [status, expiry, revtime, serial, subject]
        self.responder_cert = None  # delegated OCSP signer (Cert), made on demand
        self.write_index()

    def write_index(self):
        tmp = self.index + ".tmp"
        with open(tmp, "w") as f:
            for st, exp, rev, serial, subj in self.entries:
                f.write("%s\t%s\t%s\t%s\tunknown\t%s\n" % (st, exp, rev, serial, subj))
        os.replace(tmp, self.index)
        attr = self.index + ".attr"
        if not os.path.exists(attr):
            with open(attr, "w") as f:
                f.write("unique_subject = no\n")

    def add_to_index(self, cert, revoked=False):
        exp = time.strftime("%y%m%d%H%M%SZ", time.gmtime(cert.not_after()))
        serial = cert.serial
        if len(serial) % 2:
            serial = "0" + serial
        self.entries = [e for e in self.entries if e[3] != serial]
        if revoked:
            rev = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() - 3600))
            self.entries.append(["R", exp, rev, serial, cert.subject])
        else:
            self.entries.append(["V", exp, "", serial, cert.subject])
        self.write_index()

    def revoke(self, cert):
        self.add_to_index(cert, revoked=True)


class Pki:
    """Builds certificates under dir with the openssl CLI."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.cnf = os.path.join(dir, "req.cnf")
        with open(self.cnf, "w") as f:
            f.write(_REQ_CNF)
        self._n = 0

    def _paths(self, name):
        self._n += 1
        base = os.path.join(self.dir, "%02d-%s" % (self._n, name))
        return base + ".pem", base + ".key", base + ".csr", base + ".ext"

    def root(self, name="root", days=30):
        cert, key, _, _ = self._paths(name)
        subject = "/O=staplerd tests/CN=%s" % name
        run([OPENSSL, "req", "-x509", "-config", self.cnf, "-extensions", "v3_root",
             "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-subj", subject, "-days", str(days), "-out", cert])
        d = cert[:-len(".pem")] + ".ca"
        os.makedirs(d, exist_ok=True)
        return CA(name, cert, key, subject, None, d)

    def _issue(self, issuer, name, ext, serial=None, days=30):
        cert, key, csr, extf = self._paths(name)
        subject = "/O=staplerd tests/CN=%s" % name
        with open(extf, "w") as f:
            f.write("[v3]\n" + ext + "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid:always\n")
        run([OPENSSL, "req", "-new", "-config", self.cnf,
             "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-subj", subject, "-out", csr])
        if serial is None:
            serial = "%016X" % int.from_bytes(os.urandom(8), "big")
            serial = "1" + serial[1:]          # positive, no leading zero byte
        args = [OPENSSL, "x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key,
                "-set_serial", "0x" + serial, "-days", str(days),
                "-extfile", extf, "-extensions", "v3", "-out", cert]
        run(args)
        return cert, key, subject

    def intermediate(self, parent, name="intermediate", serial=None, ocsp_urls=()):
        """A CA issued by parent. With ocsp_urls (its AIA, usually parent's responder) it goes
        into parent's index, so that it can have a staple of its own."""
        ext = "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
        if ocsp_urls:
            ext += "authorityInfoAccess = " + ",".join("OCSP;URI:" + u for u in ocsp_urls) + "\n"
        cert, key, subject = self._issue(parent, name, ext, serial)
        d = cert[:-len(".pem")] + ".ca"
        os.makedirs(d, exist_ok=True)
        ca = CA(name, cert, key, subject, parent, d)
        if ocsp_urls:
            parent.add_to_index(ca)
        return ca

    def leaf(self, ca, name="leaf", serial=None, ocsp_urls=(), index=True, revoked=False,
             extra_ext="", days=30):
        """A leaf issued by ca with the given serial (hex) and AIA OCSP URLs, in order, valid
        for days, with extra_ext (openssl extension lines) too. It goes into ca's index (good,
        or revoked) unless index is false."""
        ext = "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
        if ocsp_urls:
            ext += "authorityInfoAccess = " + ",".join("OCSP;URI:" + u for u in ocsp_urls) + "\n"
        ext += extra_ext
        cert, key, subject = self._issue(ca, name, ext, serial, days=days)
        c = Cert(name, cert, key, subject, ca)
        if index:
            ca.add_to_index(c, revoked=revoked)
        return c

    def responder(self, ca, name=None):
        """A delegated OCSP responder certificate (id-kp-OCSPSigning) issued by ca."""
        name = name or ca.name + "-ocsp"
        cert, key, subject = self._issue(
            ca, name, "basicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature\nextendedKeyUsage = OCSPSigning\n")
        c = Cert(name, cert, key, subject, ca)
        ca.responder_cert = c
        return c

    def bundle(self, name, *certs):
        """Concatenates the PEM of certs into a file; returns its path."""
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            for c in certs:
                f.write(c.pem())
        return path


def ocsp_url(port):
    return "http://127.0.0.1:%d/" % port


# --------------------------------------------------------------------------------------------
# OpenSSL as an OCSP client: verifying staples

def verify_staple(der, issuer, cafile, cert, untrusted=None, workdir=None):
    """Runs `openssl ocsp -respin` on the DER response; returns its combined output.
    untrusted: extra certificates (PEM path) for building the responder's chain."""
    fd, path = tempfile.mkstemp(suffix=".der", dir=workdir)
    with os.fdopen(fd, "wb") as f:
        f.write(der)
    args = [OPENSSL, "ocsp", "-respin", path, "-issuer", issuer.cert, "-CAfile", cafile,
            "-cert", cert.cert]
    if untrusted:
        args += ["-verify_other", untrusted]
    p = run(args, check=False)
    return p.stdout + p.stderr


def response_text(der, workdir=None):
    """`openssl ocsp -respin -resp_text -noverify` output for a DER response."""
    fd, path = tempfile.mkstemp(suffix=".der", dir=workdir)
    with os.fdopen(fd, "wb") as f:
        f.write(der)
    p = run([OPENSSL, "ocsp", "-respin", path, "-resp_text", "-noverify"], check=False)
    return p.stdout + p.stderr


# --------------------------------------------------------------------------------------------
# Upstreams

class OcspResponder:
    """OpenSSL's own responder: `openssl ocsp -index … -port …` for one CA.

    Readiness is read from its log only. Never connect to its port to probe it: OpenSSL 3.0's
    responder spins and stops answering after a connection that closes without a request."""

    def __init__(self, ca, dir, port=None, signer=None, ndays=7, extra_args=(),
                 restartable=False):
        self.ca = ca
        self.dir = dir
        self.port = port or free_port()
        self.signer = signer or ca.responder_cert or ca
        self.ndays = ndays
        self.extra_args = list(extra_args)
        self.proc = None
        # restartable: port is a CountingForwarder of ours in front of `openssl ocsp` on a port
        # of its own, so restart() never leaves the port refusing (see restart()).
        self.restartable = restartable
        self.front = None
        self.back_port = free_port() if restartable else self.port
        self.log = os.path.join(dir, "ocsp-%s-%d.log" % (ca.name, self.back_port))

    @property
    def url(self):
        return ocsp_url(self.port)

    def restart(self):
        """A new `openssl ocsp` that has read the CA's index again (OpenSSL 3.0's responder
        never rereads it): a revocation is answered from now on. A restartable responder
        moves its front to a new process before the old one stops, so no request in between
        is refused: a refresh failing in such a gap backs off longer than a test waits. Any
        other stops and starts again on its port."""
        if self.front is None or self.proc is None:
            self.stop()
            return self.start()
        old = self.proc
        self.back_port = free_port()
        self.log = os.path.join(self.dir, "ocsp-%s-%d.log" % (self.ca.name, self.back_port))
        self.proc = None
        self.start()
        time.sleep(0.3)             # requests forwarded to the old process end first
        stop_process(old, timeout=5)
        return self

    def start(self):
        args = [OPENSSL, "ocsp", "-index", self.ca.index, "-port", str(self.back_port),
                "-rsigner", self.signer.cert, "-rkey", self.signer.key, "-CA", self.ca.cert,
                "-ndays", str(self.ndays)] + self.extra_args
        ready = "waiting for OCSP client connections"
        # A restart on the same port appends to the same log: wait for this start's line.
        seen = read_text(self.log).count(ready)
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        finally:
            logf.close()
        ok = wait_until(lambda: self.proc.poll() is not None
                        or read_text(self.log).count(ready) > seen, START_TIMEOUT)
        if self.proc.poll() is not None or not ok:
            self.stop()
            raise AssertionError("openssl ocsp did not start on port %d:\n%s"
                                 % (self.back_port, read_text(self.log, 4000)))
        if self.restartable and self.front is None:
            self.front = CountingForwarder(self.back_port, port=self.port).start()
        elif self.front is not None:
            self.front.upstream_port = self.back_port
        return self

    def stop(self):
        """Stops the responder: its port refuses from now on (the upstream is down)."""
        stop_process(self.proc, timeout=5)
        self.proc = None
        if self.front is not None:
            self.front.stop()
            self.front = None


class LoopbackHTTPServer:
    """An HTTP server of the test's on 127.0.0.1 (a thread per request): handler is its
    BaseHTTPRequestHandler class, port 0 (or None) picks a free one. start() returns self;
    stop() shuts it down and waits for its thread."""

    def __init__(self, handler, port=None):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port or 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class CountingForwarder(LoopbackHTTPServer):
    """A small HTTP OCSP proxy that counts requests and forwards each one, unchanged, to an
    upstream (usually `openssl ocsp`), one short connection per request, after self.delay
    seconds (a slow upstream)."""

    def __init__(self, upstream_port, port=None):
        self.upstream_port = upstream_port
        self.delay = 0
        self.lock = threading.Lock()
        self.requests = []          # (method, path) in arrival order
        fwd = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def _forward(self, body):
                with fwd.lock:
                    fwd.requests.append((self.command, self.path))
                if fwd.delay:
                    time.sleep(fwd.delay)
                hdrs = {"Connection": "close"}
                if body is not None:
                    hdrs["Content-Type"] = self.headers.get("Content-Type",
                                                            "application/ocsp-request")
                try:
                    st, rh, data = http_request(fwd.upstream_port, self.command, self.path,
                                                body=body, headers=hdrs, timeout=10)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(st)
                self.send_header("Content-Type", rh.get("content-type",
                                                        "application/ocsp-response"))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0") or 0)
                if n < 0 or n > 65536:
                    self.send_error(413)
                    return
                self._forward(self.rfile.read(n))

        super().__init__(Handler, port)

    @property
    def url(self):
        return ocsp_url(self.port)

    @property
    def count(self):
        with self.lock:
            return len(self.requests)


class FaultProxy(CountingForwarder):
    """A CountingForwarder whose answers can be switched to a fault: the faults that
    `openssl ocsp` cannot produce itself. mode is one of
      "forward"  pass the request to the upstream (the default)
      "status"   answer with HTTP status self.status and a short text body
      "body"     answer 200 application/ocsp-response with self.body (bytes, or a callable
                 taking the request bytes and returning bytes)
      "stall"    wait self.stall seconds, then close without an answer
      "close"    close the connection without an answer
    """

    def __init__(self, upstream_port, port=None):
        super().__init__(upstream_port, port)
        self.mode = "forward"
        self.status = 500
        self.body = b""
        self.stall = 0
        self.upstream_port_alt = None
        fwd = self
        handler = self.server.RequestHandlerClass
        forward = handler._forward

        def _forward(hself, body):
            mode = fwd.mode
            if mode == "forward":
                return forward(hself, body)
            with fwd.lock:
                fwd.requests.append((hself.command, hself.path))
            if mode == "status":
                data = b"fault injected\n"
                hself.send_response(fwd.status)
                hself.send_header("Content-Type", "text/plain")
            elif mode == "body":
                data = fwd.body(body) if callable(fwd.body) else fwd.body
                hself.send_response(200)
                hself.send_header("Content-Type", "application/ocsp-response")
            elif mode == "stall":
                time.sleep(fwd.stall)
                hself.close_connection = True
                return
            else:
                hself.close_connection = True
                return
            hself.send_header("Content-Length", str(len(data)))
            hself.send_header("Connection", "close")
            hself.end_headers()
            hself.wfile.write(data)

        handler._forward = _forward

    def set(self, mode, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self.mode = mode


class Crafter:
    """Signs OCSP responses with arbitrary contents (times, status, signer, CertID), with the
    python3-cryptography package: the hostile and broken answers a real responder does not
    give on request."""

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp
        self.x509, self.hashes, self.serialization, self.ocsp = x509, hashes, serialization, ocsp

    def _cert(self, c):
        return self.x509.load_pem_x509_certificate(c.pem())

    def _key(self, c):
        with open(c.key, "rb") as f:
            return self.serialization.load_pem_private_key(f.read(), password=None)

    def unsuccessful(self, status="TRY_LATER"):
        r = self.ocsp.OCSPResponseBuilder.build_unsuccessful(
            getattr(self.ocsp.OCSPResponseStatus, status))
        return r.public_bytes(self.serialization.Encoding.DER)

    def response(self, cert, issuer, signer, status="good", this_update=-60, next_update=86400,
                 now=None, revocation_time=None, revocation_reason=None):
        """A signed response for cert (issued by issuer), signed by signer (a Cert with key),
        with thisUpdate/nextUpdate relative to now (seconds); next_update None leaves it out.
        A revoked one is revoked an hour ago unless revocation_time (Unix seconds) says when;
        revocation_reason names an x509.ReasonFlags member ("certificate_hold")."""
        import datetime
        now = datetime.datetime.utcfromtimestamp(int(now or time.time()))
        revoked_at = (None if status != "revoked" else now - datetime.timedelta(hours=1)
                      if revocation_time is None
                      else datetime.datetime.utcfromtimestamp(revocation_time))
        reason = (None if revocation_reason is None
                  else getattr(self.x509.ReasonFlags, revocation_reason))
        st = {"good": self.ocsp.OCSPCertStatus.GOOD, "revoked": self.ocsp.OCSPCertStatus.REVOKED,
              "unknown": self.ocsp.OCSPCertStatus.UNKNOWN}[status]
        b = self.ocsp.OCSPResponseBuilder().add_response(
            cert=self._cert(cert), issuer=self._cert(issuer), algorithm=self.hashes.SHA1(),
            cert_status=st, this_update=now + datetime.timedelta(seconds=this_update),
            next_update=(None if next_update is None
                         else now + datetime.timedelta(seconds=next_update)),
            revocation_time=revoked_at, revocation_reason=reason)
        b = b.responder_id(self.ocsp.OCSPResponderEncoding.HASH, self._cert(signer))
        if signer is not issuer:
            b = b.certificates([self._cert(signer)])
        return b.sign(self._key(signer), self.hashes.SHA256()).public_bytes(
            self.serialization.Encoding.DER)


class ConnectionCounter:
    """A plain TCP listener that counts accepted connections and closes them at once: proves
    that nothing was contacted."""

    def __init__(self, port=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def url(self):
        return ocsp_url(self.port)

    @property
    def count(self):
        with self._lock:
            return self._count

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self._count += 1
            c.close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


# --------------------------------------------------------------------------------------------
# The daemon

PEM = "application/pem-certificate-chain"


def setUpModule():
    """For test modules to import: fails their tests at once when the binary is missing."""
    if not os.access(staplerd_binary(), os.X_OK):
        raise AssertionError("staplerd binary not found at %s (set STAPLERD)" % staplerd_binary())


def staplerd_binary():
    return os.environ.get("STAPLERD") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "staplerd")


def staplerd_faults_binary():
    """staplerd with SQLite fault injection (tests/fault/sqlite_faults.c), built for tests."""
    return os.environ.get("STAPLERD_FAULTS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tests",
        "staplerd_faults")


class Staplerd:
    """The real staplerd with a temporary config, database and admin socket."""

    def __init__(self, dir, ca_file, max_request="64k", timeout="5s", allow="", extra=""):
        self.dir = dir
        self.ca_file = ca_file
        self.max_request = max_request
        self.timeout = timeout
        self.allow = allow
        self.extra = extra
        self.port = free_port()
        self.conf = os.path.join(dir, "staplerd.conf")
        self.database = os.path.join(dir, "cache.db")
        self.admin_socket = os.path.join(dir, "admin.sock")
        self.log = os.path.join(dir, "staplerd.log")
        self.proc = None
        # How it is started: a command before the binary (nsenter into a test's mount
        # namespace) and variables added to the environment (libfaketime), for the tests of
        # the daemon in conditions of the machine.
        self.prefix = []
        self.env = {}
        self.binary = None          # another build of staplerd (staplerd_faults_binary())

    def config_text(self):
        return ("[server]\n"
                "listen = 127.0.0.1:%d\n"
                "admin_socket = %s\n"
                "max_request = %s\n"
                "[cache]\n"
                "database = %s\n"
                "[trust]\n"
                "ca_file = %s\n"
                "[upstream]\n"
                "timeout = %s\n"
                "max_parallel = 16\n"
                "allow = %s\n" % (self.port, self.admin_socket, self.max_request,
                                  self.database, self.ca_file, self.timeout, self.allow)
                + self.extra)

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def start(self, new_port=False):
        if new_port:
            self.port = free_port()
        self.write_config()
        logf = open(self.log, "ab")
        try:
            logf.write(b"----- start\n")
            logf.flush()
            env = dict(os.environ, **self.env) if self.env else None
            self.proc = subprocess.Popen(self.prefix + [self.binary or staplerd_binary(), "-c",
                                                        self.conf],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         cwd=self.dir, env=env)
        finally:
            logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("staplerd exited with %d during start:\n%s"
                                     % (self.proc.returncode, read_text(self.log, 4000)))
            try:
                st, _, _ = http_request(self.port, "GET", "/healthz", timeout=0.5)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError("staplerd not ready on port %d after %ds:\n%s"
                             % (self.port, START_TIMEOUT, read_text(self.log, 4000)))

    def stop(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        code = stop_process(self.proc)
        self.proc = None
        return code

    def kill(self):
        stop_process(self.proc, sig=signal.SIGKILL)
        self.proc = None

    def request(self, method, path, body=None, headers=None, timeout=15):
        return http_request(self.port, method, path, body=body, headers=headers,
                            timeout=timeout)

    def staple(self, body, content_type="application/x-pem-file", headers=None, timeout=15):
        h = {"Content-Type": content_type}
        h.update(headers or {})
        return self.request("POST", "/v1/staple", body=body, headers=h, timeout=timeout)

    # The cache, read directly and read-only, as staplerctl may.
    def db_rows(self, where="", params=()):
        conn = sqlite3.connect("file:%s?mode=ro" % self.database, uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            cur = conn.execute("SELECT * FROM ocsp_response " + where, params)
            return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def wait_rows(self, n, where="", params=(), timeout=5):
        """Polls until at least n rows match (the daemon may write after answering); fails the
        test when fewer than n match after timeout seconds."""
        def probe():
            try:
                rows = self.db_rows(where, params)
            except sqlite3.Error:
                return None
            return rows if len(rows) >= n else None
        rows = wait_until(probe, timeout, interval=0.1)
        if rows is None:
            try:
                rows = self.db_rows(where, params)
            except sqlite3.Error as e:
                raise AssertionError("cannot read %s: %s" % (self.database, e))
            if len(rows) < n:
                raise AssertionError("%d rows %s after %ss, want at least %d"
                                     % (len(rows), where or "in all", timeout, n))
        return rows


# --------------------------------------------------------------------------------------------
# The base test case

class IntegrationTestCase(unittest.TestCase):
    """A temporary directory per test (kept with STAPLER_KEEP_TMP), a PKI in it, and cleanup
    of every process started through the helpers below. On failure the logs are printed."""

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        self._logs = []
        base = os.environ.get("STAPLER_TEST_TMP") or "/tmp"
        os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="it-%s-" % self._testMethodName, dir=base)
        try:
            return super().run(result)
        finally:
            failed = len(result.failures) + len(result.errors) > before
            if failed:
                for path in self._logs:
                    sys.stderr.write("\n===== %s =====\n%s\n" % (path, read_text(path, 6000)))
            if os.environ.get("STAPLER_KEEP_TMP") or failed and os.environ.get(
                    "STAPLER_KEEP_TMP_ON_FAILURE"):
                sys.stderr.write("kept %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def setUp(self):
        self.pki = Pki(os.path.join(self.tmp, "pki"))

    # Process helpers: each one is stopped by PID in cleanup, whatever happens.
    def responder(self, ca, **kw):
        """`openssl ocsp` for ca, started (OcspResponder's arguments; restartable=True puts a
        forwarder of ours in front, for gapless restart())."""
        if ca.responder_cert is None and "signer" not in kw:
            self.pki.responder(ca)
        r = OcspResponder(ca, self.tmp, **kw)
        self._logs.append(r.log)
        self.addCleanup(r.stop)
        return r.start()

    def revoke_at_upstream(self, resp, cert):
        """The CA revokes cert, and its responder resp answers revoked from now on (restarted:
        without a refused request in between when resp is restartable)."""
        resp.ca.revoke(cert)
        resp.restart()
        self._logs.append(resp.log)

    def forwarder(self, upstream_port, port=None):
        f = CountingForwarder(upstream_port, port=port).start()
        self.addCleanup(f.stop)
        return f

    def fault_proxy(self, upstream_port):
        f = FaultProxy(upstream_port).start()
        self.addCleanup(f.stop)
        return f

    def counter(self):
        c = ConnectionCounter().start()
        self.addCleanup(c.stop)
        return c

    def staplerd(self, ca_file, start=True, **kw):
        d = Staplerd(self.tmp, ca_file, **kw)
        self._logs.append(d.log)
        self.addCleanup(self._stop_staplerd, d)
        if start:
            d.start()
        return d

    def _stop_staplerd(self, d):
        """Cleanup: a daemon still running must exit 0 on SIGTERM; one that died during the
        test (a crash on input) is an error too."""
        if d.proc is None:
            return
        died = d.proc.poll()
        code = d.stop()
        if died is not None:
            raise AssertionError("staplerd died during the test with status %r" % died)
        if code != 0:
            raise AssertionError("staplerd exited with %r on SIGTERM (expected 0)" % code)

    def save(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def skip_unless_ci(self, why):
        """A prerequisite is missing: skips the test, but fails it under CI=true, where a
        skip would count as a pass."""
        if os.environ.get("CI") == "true":
            self.fail("%s (CI=true: not skipped)" % why)
        self.skipTest(why)

    # Assertions
    def assertJsonError(self, status, headers, body, expected_status):
        self.assertEqual(status, expected_status, body[:500])
        self.assertTrue(headers.get("content-type", "").startswith("application/json"),
                        headers.get("content-type"))
        doc = json.loads(body.decode("utf-8"))
        self.assertIsInstance(doc, dict)
        self.assertIsInstance(doc.get("error"), str)
        self.assertTrue(doc["error"].strip(), "empty error message")
        return doc

    def assertStapleVerifies(self, der, issuer, cafile, cert, status="good", untrusted=None):
        out = verify_staple(der, issuer, cafile, cert, untrusted=untrusted, workdir=self.tmp)
        self.assertIn("Response verify OK", out)
        self.assertIn(": %s" % status, out)
        return out
