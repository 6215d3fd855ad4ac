"""Soak of the real staplerd (run by hand, bounded; issue 11): mixed load for MINUTES while the
upstream flaps and the database's disk fills and frees, with every answer checked.

Load, all at once:
  - honest clients submitting certificates of the test PKI (POST /v1/staple, /ocsp GET);
  - an anonymous client asking /ocsp for random serials of the trusted CA (misses);
  - slow clients dribbling request bytes (slowloris) and idle connections.
Faults, in turn every PHASE seconds: good, slow (answers after 3 s), junk bodies, HTTP 500,
down (connection closed), a CA that revokes one certificate; and the tmpfs holding the
database filled and freed.
Checks on every staple served: it parses, its signature verifies against the CA, nextUpdate is
in the future, it is for the certificate asked about, and a certificate once served `revoked`
is never served `good` again. staplerd's RSS and open descriptors are sampled every 10 s.

  tests/integration/netns-run python3 tests/soak/soak.py [MINUTES]     (default 10)

Prints one summary; exits non-zero when a check failed or staplerd died.
"""

import base64
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness                                             # noqa: E402
from harness import (Crafter, FaultProxy, OcspResponder, PEM, Pki, Staplerd,  # noqa: E402
                     free_port, http_request)
from test_faults_database import FullDisk                            # noqa: E402
from test_service_ocsp import cert_id, ocsp_request                 # noqa: E402

from cryptography import x509                               # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec    # noqa: E402
from cryptography.x509 import ocsp as xocsp                 # noqa: E402

MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
PHASE = 20          # seconds per upstream mode
N_LEAVES = 40


class Checker:
    def __init__(self, ca_cert, signer_cert):
        self.ca = ca_cert
        self.signer = signer_cert
        self.lock = threading.Lock()
        self.revoked_seen = set()
        self.counts = {"ok": 0, "revoked": 0, "errors_http": 0, "refused": 0}
        self.failures = []

    def fail(self, msg):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(msg)

    def check(self, serial, der):
        try:
            r = xocsp.load_der_ocsp_response(der)
        except Exception as e:
            return self.fail("serial %s: unparsable staple: %s" % (serial, e))
        if r.response_status != xocsp.OCSPResponseStatus.SUCCESSFUL:
            with self.lock:
                self.counts["refused"] += 1
            return
        if r.serial_number != int(serial, 16):
            return self.fail("serial %s: staple for serial %X" % (serial, r.serial_number))
        key = self.signer.public_key() if r.certificates else self.ca.public_key()
        try:
            key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(r.signature_hash_algorithm))
        except Exception:
            return self.fail("serial %s: signature does not verify" % serial)
        now = time.time()
        nu = getattr(r, "next_update_utc", None) or (
            r.next_update and r.next_update.replace(tzinfo=__import__("datetime").timezone.utc))
        if nu is None or nu.timestamp() <= now:
            return self.fail("serial %s: served after nextUpdate" % serial)
        with self.lock:
            if r.certificate_status == xocsp.OCSPCertStatus.REVOKED:
                self.revoked_seen.add(serial)
                self.counts["revoked"] += 1
            elif serial in self.revoked_seen:
                self.failures.append("serial %s: good again after revoked" % serial)
            else:
                self.counts["ok"] += 1


def main():
    harness.setUpModule()
    base = os.environ.get("STAPLER_TEST_TMP") or "/tmp"
    tmp = os.path.join(base, "soak-%d" % os.getpid())
    os.makedirs(tmp)
    pki = Pki(os.path.join(tmp, "pki"))
    root = pki.root("root", days=60)
    signer = pki.responder(root)
    up_port = free_port()
    proxy = FaultProxy(up_port).start()
    leaves = [pki.leaf(root, "leaf%d" % i, serial="%X" % (0x5000 + i), ocsp_urls=[proxy.url])
              for i in range(N_LEAVES)]
    resp = OcspResponder(root, tmp, port=up_port, ndays=1).start()
    crafter = Crafter()
    checker = Checker(x509.load_pem_x509_certificate(root.pem()),
                      x509.load_pem_x509_certificate(signer.pem()))
    dbdir = os.path.join(tmp, "db")
    os.makedirs(dbdir)
    disk = FullDisk(dbdir, size="32m")
    d = Staplerd(tmp, pki.bundle("ca.pem", root), timeout="2s", extra=(
        "[refresh]\nwindow = 1d\nmin_interval = 5s\ncheck_interval = 1s\n"
        "[server]\nheader_timeout = 5s\nrequest_timeout = 10s\nidle_timeout = 30s\n"))
    d.database = os.path.join(dbdir, "cache.db")
    disk.enter(d).start()
    stop = threading.Event()
    samples = []

    def honest():
        while not stop.is_set():
            leaf = random.choice(leaves)
            try:
                st, _, body = d.staple(leaf.pem(), PEM, timeout=15)
            except OSError as e:
                checker.fail("honest client: %s" % e)
                continue
            if st == 200:
                checker.check(leaf.serial, body)
            else:
                with checker.lock:
                    checker.counts["errors_http"] += 1

    def ocsp_get():
        while not stop.is_set():
            leaf = random.choice(leaves)
            req = ocsp_request([cert_id(root.der(), leaf.serial)])
            path = "/ocsp/" + base64.b64encode(req).decode().replace("/", "%2F")
            try:
                st, _, body = d.request("GET", path, timeout=15)
            except OSError as e:
                checker.fail("ocsp client: %s" % e)
                continue
            if st == 200:
                checker.check(leaf.serial, body)

    def anonymous():
        while not stop.is_set():
            serial = "%X" % random.getrandbits(63)
            try:
                d.request("POST", "/ocsp", body=ocsp_request([cert_id(root.der(), serial)]),
                          headers={"Content-Type": "application/ocsp-request"}, timeout=15)
            except OSError:
                pass

    def slow_clients():
        socks = []
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
                socks.append(s)
            except OSError:
                pass
            for s in list(socks):
                try:
                    s.sendall(b"x")
                except OSError:
                    socks.remove(s)
                    s.close()
            if len(socks) > 50:
                socks.pop(0).close()
            time.sleep(0.5)
        for s in socks:
            s.close()

    def sample():
        while not stop.is_set():
            try:
                with open("/proc/%d/status" % d.proc.pid) as f:
                    rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
                fds = len(os.listdir("/proc/%d/fd" % d.proc.pid))
                samples.append((time.time(), int(rss), fds))
            except OSError:
                checker.fail("staplerd is gone")
                return
            stop.wait(10)

    threads = [threading.Thread(target=f, daemon=True) for f in
               [honest, honest, ocsp_get, anonymous, slow_clients, sample]]
    for t in threads:
        t.start()
    modes = ["forward", "slow", "junk", "http500", "down", "forward", "revoke", "diskfull",
             "forward"]
    revoked_done = False
    t_end = time.time() + MINUTES * 60
    i = 0
    try:
        while time.time() < t_end:
            mode = modes[i % len(modes)]
            i += 1
            print("soak: %4.0fs mode=%s counts=%s" % (MINUTES * 60 - (t_end - time.time()), mode,
                                                    checker.counts), flush=True)
            if mode == "forward":
                proxy.set("forward")
            elif mode == "slow":
                proxy.set("stall", stall=3)
            elif mode == "junk":
                proxy.set("body", body=b"\x30\x03junk" * 10)
            elif mode == "http500":
                proxy.set("status", status=500)
            elif mode == "down":
                proxy.set("close")
            elif mode == "revoke" and not revoked_done:
                resp.stop()
                root.revoke(leaves[0])
                resp = OcspResponder(root, tmp, port=up_port, ndays=1).start()
                proxy.set("forward")
                revoked_done = True
            elif mode == "diskfull":
                proxy.set("forward")
                disk.fill()
                time.sleep(PHASE)
                disk.free()
                continue
            time.sleep(PHASE)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
        alive = d.proc.poll() is None
        code = d.stop() if alive else d.proc.returncode
        resp.stop()
        proxy.stop()
        disk.stop()
    first, last = (samples[0], samples[-1]) if samples else ((0, 0, 0), (0, 0, 0))
    peak_rss = max((s[1] for s in samples), default=0)
    print("soak: minutes=%.1f answers=%s revoked_serials=%d" % (MINUTES, checker.counts,
                                                               len(checker.revoked_seen)))
    print("soak: rss_kib first=%d last=%d peak=%d fds first=%d last=%d max=%d samples=%d" % (
        first[1], last[1], peak_rss, first[2], last[2], max((s[2] for s in samples), default=0),
        len(samples)))
    print("soak: exit=%r alive_until_stop=%s failures=%d" % (code, alive, len(checker.failures)))
    for f in checker.failures[:20]:
        print("soak: FAIL " + f)
    if leaves[0].serial not in checker.revoked_seen and MINUTES * 60 > PHASE * 7:
        checker.failures.append("the revoked certificate was never served revoked")
        print("soak: FAIL the revoked certificate was never served revoked")
    ok = alive and code == 0 and not checker.failures
    print("soak: " + ("PASS" if ok else "FAIL") + " (log: %s)" % d.log)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
