"""CRL-assisted withdrawal (docs/contract.md §8.13, issue 20) in the real staplerd: a CRL that lists
a certificate whose staple is held good withdraws it within one poll, and the OCSP refetch then
serves revoked; while OCSP still answers good from before the CRL the staple stays withdrawn
(crl_ocsp_disagree); CRLs with a bad signature, from another issuer, expired or over the size
bound are ignored with a log line and change nothing; the CRL URL of an untrusted certificate
is never contacted; polls are conditional (ETag). The test CA's CRLs are signed by the test
itself (python3-cryptography); the OCSP upstream is `openssl ocsp`, behind harness.FaultProxy
where it must lag. Run inside tests/integration/netns-run (CTest does).
"""

import datetime
import http.server
import os
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from harness import (Crafter, free_port, IntegrationTestCase, LoopbackHTTPServer, PEM,
                     read_text, response_text, setUpModule, staplerd_binary, wait_until)

CRL_CONF = "[crl]\npoll_interval = 1s\n"


class CrlServer(LoopbackHTTPServer):
    """Publishes one CRL (self.body, DER) at /ca.crl with an ETag, answering If-None-Match
    with 304; records every request's headers."""

    def __init__(self):
        self.body = None
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.requests.append({k.lower(): v for k, v in self.headers.items()})
                    body = outer.body
                etag = '"%x"' % (hash(body) & 0xffffffff) if body else None
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)

    @property
    def url(self):
        return "http://127.0.0.1:%d/ca.crl" % self.port

    def count(self):
        with self.lock:
            return len(self.requests)


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def make_crl(ca, serials, this_update=-60, next_update=3600, key=None, issuer_name=None,
             padding=0):
    """A DER CRL of ca listing serials (hex), dated relative to now, signed by key (default:
    ca's own), naming issuer_name (default: ca's subject); padding adds that many unrelated
    entries."""
    now = datetime.datetime.utcnow().replace(microsecond=0)
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(issuer_name or load_cert(ca.cert).subject)
         .last_update(now + datetime.timedelta(seconds=this_update))
         .next_update(now + datetime.timedelta(seconds=next_update)))
    for s in list(serials) + ["7F%08X" % i for i in range(padding)]:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                      .serial_number(int(s, 16))
                                      .revocation_date(now - datetime.timedelta(seconds=120))
                                      .build())
    return b.sign(key or load_key(ca.key), hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)


class CrlTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.signer = self.pki.responder(self.root)
        self.port = free_port()
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)
        self.crls = CrlServer().start()
        self.addCleanup(self.crls.stop)

    def leaf(self, name, serial, url):
        return self.pki.leaf(self.root, name, serial=serial, ocsp_urls=[url],
                             extra_ext="crlDistributionPoints = URI:%s\n" % self.crls.url)

    def outbox_types(self, d):
        conn = sqlite3.connect("file:%s?mode=ro" % d.database, uri=True, timeout=5)
        try:
            return [r[0] for r in conn.execute("SELECT type FROM event_outbox ORDER BY seq")]
        finally:
            conn.close()

    def status_of(self, d, leaf):
        st, _, body = d.staple(leaf.pem(), PEM)
        if st != 200:
            return "error %d %s" % (st, body[:300].decode(errors="replace"))
        return response_text(body, self.tmp)

    def metric(self, d, name):
        _, _, body = d.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def withdrawn_with_ocsp_lagging(self, name, serial):
        """A leaf stapled good, then OCSP (behind a FaultProxy) answers good from an hour ago
        and the CRL lists the leaf: returns (staplerd, leaf) once the staple is withdrawn."""
        proxy = self.fault_proxy(self.port)
        leaf = self.leaf(name, serial, proxy.url)
        self.responder(self.root, port=self.port, ndays=7)
        self.crls.body = make_crl(self.root, [])
        d = self.staplerd(self.ca_file, extra=CRL_CONF)
        self.assertIn(": good", self.status_of(d, leaf))
        crafter = Crafter()
        proxy.set("body", body=lambda req: crafter.response(leaf, self.root, self.signer,
                                                            this_update=-3600))
        time.sleep(1.1)             # a CRL thisUpdate after the staple held
        self.crls.body = make_crl(self.root, [leaf.serial], this_update=0)
        self.assertTrue(wait_until(lambda: "withdrawn" in self.status_of(d, leaf), 10),
                        read_text(d.log, 4000))
        return d, leaf

    # ----------------------------------------------------------------------------------------
    def test_crl_withdraws_good_staple_and_ocsp_refetch_serves_revoked(self):
        """The CA revokes the meter and publishes its CRL; staplerd holds a good staple that
        its schedule would not refresh for an hour. Within one poll the good staple is
        withdrawn and fetched again at once: OCSP says revoked, and that is served."""
        leaf = self.leaf("meter-1", "C001", "http://127.0.0.1:%d/" % self.port)
        other = self.leaf("meter-2", "C002", "http://127.0.0.1:%d/" % self.port)
        resp = self.responder(self.root, port=self.port, ndays=7)
        self.crls.body = make_crl(self.root, [])
        d = self.staplerd(self.ca_file, extra=CRL_CONF)
        self.assertIn(": good", self.status_of(d, leaf))
        self.assertIn(": good", self.status_of(d, other))
        self.assertTrue(wait_until(lambda: "event=crl_applied" in read_text(d.log), 10))
        resp.stop()
        self.root.revoke(leaf)
        self.responder(self.root, port=self.port, ndays=7)
        time.sleep(1.1)             # a CRL thisUpdate after the staples held
        self.crls.body = make_crl(self.root, [leaf.serial], this_update=0)
        self.assertTrue(wait_until(lambda: ": revoked" in self.status_of(d, leaf), 10),
                        read_text(d.log, 4000))
        log = read_text(d.log)
        self.assertIn("event=staple_withdrawn serial=%s" % leaf.serial, log)
        self.assertIn("event=cert_withdrawn", log)
        types = self.outbox_types(d)
        self.assertIn("cert_withdrawn", types)
        self.assertIn("cert_revoked", types)
        self.assertLess(types.index("cert_withdrawn"), types.index("cert_revoked"))
        # The other certificate is untouched, and nothing is withdrawn any more.
        self.assertIn(": good", self.status_of(d, other))
        self.assertEqual(self.metric(d, "staplerd_staples_withdrawn"), 0)
        self.assertGreaterEqual(self.metric(d, "staplerd_crl_withdrawals_total"), 1)
        # Polls are conditional: the unchanged CRL is answered 304.
        n = self.crls.count()
        self.assertTrue(wait_until(lambda: self.crls.count() >= n + 2, 10))
        self.assertTrue(any("if-none-match" in h for h in self.crls.requests[n:]),
                        self.crls.requests[n:])

    def test_ocsp_lagging_keeps_the_staple_withdrawn(self):
        """OCSP keeps answering good from before the CRL: the staple stays withdrawn (clients
        get an error that says why), crl_ocsp_disagree is raised; a newer CRL that no longer
        lists the serial (a hold released) serves it again."""
        d, leaf = self.withdrawn_with_ocsp_lagging("meter-l", "C101")
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 502)
        self.assertIn(b"CRL", body)
        self.assertTrue(wait_until(lambda: "crl_ocsp_disagree" in self.outbox_types(d), 10))
        self.assertEqual(self.metric(d, "staplerd_staples_withdrawn"), 1)
        # The hold is released: the next CRL does not list it; OCSP's good is served again.
        self.crls.body = make_crl(self.root, [], this_update=0)
        self.assertTrue(wait_until(lambda: ": good" in self.status_of(d, leaf), 10),
                        read_text(d.log, 4000))
        self.assertEqual(self.metric(d, "staplerd_staples_withdrawn"), 0)
        self.assertIn("event=staple_reinstated", read_text(d.log))

    def test_bad_crls_are_ignored(self):
        """A CRL with a bad signature, from another issuer, expired, or larger than max_size
        is refused with a log line saying why and changes nothing."""
        leaf = self.leaf("meter-b", "C201", "http://127.0.0.1:%d/" % self.port)
        self.responder(self.root, port=self.port, ndays=7)
        other_ca = self.pki.root("other-ca")
        d = self.staplerd(self.ca_file, extra=CRL_CONF + "max_size = 2k\n")
        stranger_key = ec.generate_private_key(ec.SECP256R1())
        self.assertIn(": good", self.status_of(d, leaf))
        # Dated after the staple held: were any of them taken, it would withdraw the staple.
        time.sleep(1.1)
        cases = [
            ("bad signature", make_crl(self.root, [leaf.serial], this_update=0,
                                       key=stranger_key)),
            ("another CA", make_crl(other_ca, [leaf.serial], this_update=0)),
            ("expired", make_crl(self.root, [leaf.serial], this_update=-7200, next_update=-60)),
            ("larger than [crl] max_size", make_crl(self.root, [leaf.serial], this_update=0,
                                                    padding=200)),
        ]
        for reason, der in cases:
            with self.subTest(reason=reason):
                before = read_text(d.log).count("event=crl_rejected")
                self.crls.body = der
                self.assertTrue(wait_until(lambda: read_text(d.log).count("event=crl_rejected")
                                           > before, 10), read_text(d.log, 3000))
                line = [l for l in read_text(d.log).splitlines() if "crl_rejected" in l][-1]
                self.assertIn(reason, line)
                self.assertIn(": good", self.status_of(d, leaf))
        self.assertNotIn("staple_withdrawn", read_text(d.log))
        self.assertEqual([t for t in self.outbox_types(d) if t.startswith(("cert", "crl"))], [])

    def test_untrusted_certificates_crl_is_never_contacted(self):
        """A certificate that does not chain to the anchors gets 403 and its CRL Distribution
        Point is never fetched."""
        stranger = self.pki.root("stranger")
        leaf = self.pki.leaf(stranger, "intruder", serial="C301", ocsp_urls=[
            "http://127.0.0.1:%d/" % self.port],
            extra_ext="crlDistributionPoints = URI:%s\n" % self.crls.url)
        self.crls.body = make_crl(stranger, [])
        d = self.staplerd(self.ca_file, extra=CRL_CONF)
        st, _, _ = d.staple(leaf.pem() + stranger.pem(), PEM)
        self.assertEqual(st, 403)
        time.sleep(3)
        self.assertEqual(self.crls.count(), 0)
        self.assertNotIn("crl_followed", read_text(d.log))

    def test_withdrawal_survives_a_restart(self):
        """The CRL is kept in the database: a restart withdraws at once what it lists (before
        any download), and raises no event again."""
        d, leaf = self.withdrawn_with_ocsp_lagging("meter-r", "C401")
        events = self.outbox_types(d)
        self.crls.stop()                # no download after the restart
        d.stop()
        d.start()
        self.assertIn("withdrawn", self.status_of(d, leaf))
        time.sleep(1)
        self.assertEqual(self.outbox_types(d).count("cert_withdrawn"),
                         events.count("cert_withdrawn"))

    def test_anonymous_ocsp_miss_contradicted_by_the_crl_is_not_served(self):
        """A certificate nobody submitted, asked for through /ocsp (an anonymous miss) while
        the issuer's CRL lists it and OCSP answers good from before the CRL: not good."""
        proxy = self.fault_proxy(self.port)
        known = self.leaf("meter-a", "C501", proxy.url)
        other = self.leaf("meter-o", "C502", proxy.url)
        self.responder(self.root, port=self.port, ndays=7)
        self.crls.body = make_crl(self.root, [])
        d = self.staplerd(self.ca_file, extra=CRL_CONF)
        self.assertIn(": good", self.status_of(d, known))     # the issuer is learned
        crafter = Crafter()
        proxy.set("body", body=lambda req: crafter.response(other, self.root, self.signer,
                                                            this_update=-3600))
        time.sleep(1.1)
        self.crls.body = make_crl(self.root, [other.serial], this_update=0)
        self.assertTrue(wait_until(lambda: "revoked=1" in read_text(d.log), 10))
        req = (ocsp.OCSPRequestBuilder().add_certificate(load_cert(other.cert),
                                                         load_cert(self.root.cert), hashes.SHA1())
               .build().public_bytes(serialization.Encoding.DER))
        st, _, body = d.request("POST", "/ocsp", body=req,
                                headers={"Content-Type": "application/ocsp-request"})
        self.assertEqual(st, 200)
        resp = ocsp.load_der_ocsp_response(body)
        self.assertNotEqual(resp.response_status, ocsp.OCSPResponseStatus.SUCCESSFUL,
                            "a response the CRL contradicts was served")
        self.assertGreaterEqual(proxy.count, 2, "the upstream was never asked")

    def test_configured_crl_url(self):
        """[crl] urls names an issuer's CRL URL: followed for certificates without CRL
        Distribution Points, and a malformed entry is a configuration error at its line."""
        leaf = self.pki.leaf(self.root, "meter-c", serial="C601",
                             ocsp_urls=["http://127.0.0.1:%d/" % self.port])
        resp = self.responder(self.root, port=self.port, ndays=7)
        self.crls.body = make_crl(self.root, [])
        d = self.staplerd(self.ca_file, extra=CRL_CONF + "urls = %s=%s\n" % (
            self.root.key_hash(), self.crls.url))
        self.assertIn(": good", self.status_of(d, leaf))
        self.assertTrue(wait_until(lambda: self.crls.count() >= 1, 10), read_text(d.log, 3000))
        resp.stop()
        self.root.revoke(leaf)
        self.responder(self.root, port=self.port, ndays=7)
        time.sleep(1.1)
        self.crls.body = make_crl(self.root, [leaf.serial], this_update=0)
        self.assertTrue(wait_until(lambda: ": revoked" in self.status_of(d, leaf), 10),
                        read_text(d.log, 4000))
        self.assertIn("cert_withdrawn", self.outbox_types(d))
        bad = os.path.join(self.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write(d.config_text() + "[crl]\nurls = nothex=%s\n" % self.crls.url)
        p = subprocess.run([staplerd_binary(), "-t", "-c", bad], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("urls: not an issuer key hash", p.stderr + p.stdout)


if __name__ == "__main__":
    unittest.main()
