"""Which answer staplerd keeps and hands out, and which requests it refuses (issue 9, items
1, 4, 5, 6, 8): chain staples for an intermediate that is itself in the trust bundle, OCSP
requests with critical extensions, the newest answer wins, nothing inside the safety margin,
and an eviction that wins over a fetch in flight.

The upstreams are OpenSSL's `openssl ocsp`; the answers it cannot give (older, nearly
expired) come from harness.FaultProxy and harness.Crafter. Run inside
tests/integration/netns-run (CTest does).
"""

import base64
import email.utils
import json
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Crafter, free_port, IntegrationTestCase, ocsp_url, OPENSSL, PEM,
                     read_text, run, setUpModule, wait_until)
from test_service_ocsp import MALFORMED, NONCE_OID, cert_id, der, seq
from test_ops_staplerctl import staplerctl_binary

OCSP_REQUEST = "application/ocsp-request"

# Due one second after every fetch, checked every second.
FAST_REFRESH = "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"


def request_with_extensions(ids, request_exts=(), single_exts=()):
    """DER OCSPRequest for the CertIDs ids with request-level extensions request_exts and, on
    every Request, singleRequestExtensions single_exts; each extension (oid_der, critical,
    value)."""
    def exts(items):
        return seq(*[seq(oid, der(0x01, b"\xff") if crit else b"", der(0x04, value))
                     for oid, crit, value in items])
    reqs = [seq(i, der(0xA0, exts(single_exts))) if single_exts else seq(i) for i in ids]
    tbs = [seq(*reqs)]
    if request_exts:
        tbs.append(der(0xA2, exts(request_exts)))
    return seq(seq(*tbs))


# An extension nobody defined (a private arc), and the RFC 6960 §4.4.6 service locator.
UNKNOWN_OID = der(0x06, bytes.fromhex("2b0601040182cd1a0101"))
SERVICE_LOCATOR_OID = der(0x06, bytes.fromhex("2b0601050507300107"))


class PolicyTest(IntegrationTestCase):

    def mkpki(self):
        """The mkpki-style PKI: root, an intermediate (AIA: the root's responder), a leaf (AIA:
        the intermediate's responder), another root; both responders running; the bundle
        holds root + intermediate + the other root."""
        ns = type("Pki", (), {})()
        ns.root = self.pki.root("root")
        self.pki.responder(ns.root)
        ns.root_port, ns.inter_port = free_port(), free_port()
        ns.inter = self.pki.intermediate(ns.root, ocsp_urls=[ocsp_url(ns.root_port)])
        self.pki.responder(ns.inter)
        ns.leaf = self.pki.leaf(ns.inter, "leaf", serial="9A01",
                                ocsp_urls=[ocsp_url(ns.inter_port)])
        ns.other = self.pki.root("other-root")
        self.responder(ns.root, port=ns.root_port, ndays=30)
        self.responder(ns.inter, port=ns.inter_port, ndays=30)
        ns.bundle = self.pki.bundle("ca-bundle.pem", ns.root, ns.inter, ns.other)
        return ns

    def staples(self, d, body):
        st, h, b = d.request("POST", "/v1/staples", body=body, headers={"Content-Type": PEM})
        self.assertEqual(st, 200, b[:500])
        return json.loads(b)["staples"]

    def ctl(self, d, *args):
        return run([staplerctl_binary(), "-c", d.conf] + list(args), check=False, timeout=60)

    def row(self, d, cert):
        rows = d.db_rows("WHERE serial = ? AND issuer_key_hash = ?",
                         (cert.serial, cert.issuer.key_hash()))
        return rows[0] if rows else None

    def log_has(self, d, text, timeout=5):
        return wait_until(lambda: text in read_text(d.log), timeout)

    # ----------------------------------------------------------------------------------------
    # 1. Chain staples when the intermediate is a trust anchor too

    def test_intermediate_in_bundle_gets_its_staple(self):
        ns = self.mkpki()
        d = self.staplerd(ns.bundle)
        got = self.staples(d, ns.leaf.pem() + ns.inter.pem())
        self.assertEqual([(s["serial"], s["issuer"]) for s in got],
                         [(ns.leaf.serial, ns.inter.key_hash()),
                          (ns.inter.serial, ns.root.key_hash())])
        leaf_der = base64.b64decode(got[0]["response"])
        inter_der = base64.b64decode(got[1]["response"])
        # Each verified by openssl against its own issuer.
        self.assertStapleVerifies(leaf_der, ns.inter, ns.bundle, ns.leaf, "good")
        self.assertStapleVerifies(inter_der, ns.root, ns.root.cert, ns.inter, "good")
        # The leaf alone: its issuer (an anchor) comes from the bundle, and so does the root.
        got = self.staples(d, ns.leaf.pem())
        self.assertEqual([s["serial"] for s in got], [ns.leaf.serial, ns.inter.serial])
        # The intermediate alone: an anchor whose issuer is in the bundle gets its staple.
        got = self.staples(d, ns.inter.pem())
        self.assertEqual([s["serial"] for s in got], [ns.inter.serial])
        st, _, single = d.staple(ns.inter.pem(), PEM)
        self.assertEqual((st, single), (200, inter_der))
        # A self-signed root gets none.
        st, h, b = d.request("POST", "/v1/staples", body=ns.root.pem(),
                             headers={"Content-Type": PEM})
        self.assertEqual(st, 403, b)
        # /ocsp answers for the intermediate (issuer: the root, an anchor) from the cache.
        p = run([OPENSSL, "ocsp", "-issuer", ns.root.cert, "-cert", ns.inter.cert, "-url",
                 "http://127.0.0.1:%d/ocsp" % d.port, "-CAfile", ns.root.cert, "-timeout",
                 "20"], check=False, timeout=40)
        self.assertIn("Response verify OK", p.stdout + p.stderr)
        self.assertIn("%s: good" % ns.inter.cert, p.stdout + p.stderr)
        # And a refresh of the intermediate's staple verifies against the root.
        before = self.row(d, ns.inter)
        time.sleep(1.1)
        p = self.ctl(d, "refresh", ns.inter.serial, "--issuer", ns.root.key_hash())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertGreater(self.row(d, ns.inter)["fetched_at"], before["fetched_at"])

    def test_ocsp_for_an_intermediate_in_the_bundle(self):
        """/ocsp forwards a miss for an intermediate of the bundle to the URL its AIA names,
        before anyone submitted it, and answers the cached staple after."""
        ns = self.mkpki()
        d = self.staplerd(ns.bundle)
        for _ in range(2):
            p = run([OPENSSL, "ocsp", "-issuer", ns.root.cert, "-cert", ns.inter.cert, "-url",
                     "http://127.0.0.1:%d/ocsp" % d.port, "-CAfile", ns.root.cert, "-timeout",
                     "20"], check=False, timeout=40)
            self.assertIn("Response verify OK", p.stdout + p.stderr)
            self.assertIn("%s: good" % ns.inter.cert, p.stdout + p.stderr)
        self.assertEqual([r["serial"] for r in d.db_rows()], [ns.inter.serial])

    def test_anchor_issuer_from_the_request(self):
        """An intermediate in the bundle whose root is not: the root sent in the request is
        its issuer (it signed it), so the intermediate gets a staple too."""
        ns = self.mkpki()
        d = self.staplerd(self.pki.bundle("inter-only.pem", ns.inter))
        got = self.staples(d, ns.leaf.pem() + ns.inter.pem() + ns.root.pem())
        self.assertEqual([s["serial"] for s in got], [ns.leaf.serial, ns.inter.serial])
        self.assertStapleVerifies(base64.b64decode(got[1]["response"]), ns.root, ns.root.cert,
                                  ns.inter, "good")
        # Without it, only the leaf: nothing known above the anchor.
        got = self.staples(d, ns.leaf.pem())
        self.assertEqual([s["serial"] for s in got], [ns.leaf.serial])

    # ----------------------------------------------------------------------------------------
    # 4. A critical extension staplerd does not understand is refused (RFC 6960 §4.1.2)

    def test_unknown_critical_extension_is_malformed(self):
        ns = self.mkpki()
        d = self.staplerd(ns.bundle)
        st, _, cached = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual(st, 200)
        cid = cert_id(ns.inter.der(), ns.leaf.serial)

        def post(req):
            st, h, body = d.request("POST", "/ocsp", body=req,
                                    headers={"Content-Type": OCSP_REQUEST})
            self.assertEqual(st, 200)
            return body

        def get(req):
            b64 = base64.b64encode(req).decode()
            st, h, body = d.request("GET", "/ocsp/" + b64.replace("+", "%2B").replace(
                "/", "%2F").replace("=", "%3D"))
            self.assertEqual(st, 200)
            return body

        unknown, locator = (UNKNOWN_OID, True, b"\x05\x00"), (SERVICE_LOCATOR_OID, True,
                                                                  seq(der(0x30, b"")))
        nonce = (NONCE_OID, True, der(0x04, os.urandom(16)))
        for name, req in [
                ("request", request_with_extensions([cid], request_exts=[unknown])),
                ("single", request_with_extensions([cid], single_exts=[unknown])),
                ("service locator", request_with_extensions([cid], single_exts=[locator])),
                ("after a nonce", request_with_extensions([cid], request_exts=[nonce, unknown]))]:
            with self.subTest(where=name):
                self.assertEqual(post(req), MALFORMED)
                self.assertEqual(get(req), MALFORMED)
        # Understood (the nonce, even critical) or not critical: answered from the cache.
        for name, req in [
                ("critical nonce", request_with_extensions([cid], request_exts=[nonce])),
                ("not critical", request_with_extensions(
                    [cid], request_exts=[(UNKNOWN_OID, False, b"\x05\x00")],
                    single_exts=[(UNKNOWN_OID, False, b"\x05\x00")]))]:
            with self.subTest(where=name):
                self.assertEqual(post(req), cached)

    # ----------------------------------------------------------------------------------------
    # 5, 6, 8. Which answer is kept

    def behind_proxy(self, serial):
        """A root with its responder, a leaf whose AIA is a FaultProxy in front of it."""
        ns = type("Up", (), {})()
        ns.root = self.pki.root("root")
        ns.signer = self.pki.responder(ns.root)
        ns.port = free_port()
        ns.proxy = self.fault_proxy(ns.port)
        ns.leaf = self.pki.leaf(ns.root, "leaf", serial=serial, ocsp_urls=[ns.proxy.url])
        self.responder(ns.root, port=ns.port, ndays=7)
        ns.bundle = self.pki.bundle("ca-bundle.pem", ns.root)
        ns.crafter = Crafter()
        return ns

    def craft(self, ns, **kw):
        return ns.crafter.response(ns.leaf, ns.root, ns.signer, **kw)

    def start_serving(self, ns, body):
        """staplerd (refreshing every second) with body, the upstream's answer, served."""
        ns.proxy.set("body", body=body)
        d = self.staplerd(ns.bundle, extra=FAST_REFRESH)
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, body))
        return d

    def test_older_answer_does_not_replace_newer(self):
        ns = self.behind_proxy("5A01")
        newer = self.craft(ns, this_update=-60, next_update=7 * 86400)
        d = self.start_serving(ns, newer)
        # A lagging replica: valid, verified, and an hour older (with a later nextUpdate).
        ns.proxy.set("body", body=lambda req: self.craft(ns, this_update=-3600,
                                                         next_update=8 * 86400))
        mark = ns.proxy.count
        # Refreshed every second: two refreshes later the first has been decided.
        self.assertTrue(wait_until(lambda: ns.proxy.count >= mark + 2, 10), "not refreshed")
        row = self.row(d, ns.leaf)
        self.assertEqual(bytes(row["response_der"]), newer, "the older answer was stored")
        self.assertEqual(row["failures"], 0, "an older answer is no failure")
        self.assertIn("older", row["last_error"] or "")
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, newer), "the older answer was served")
        self.assertTrue(self.log_has(d, "event=response_older"), "no response_older logged")
        line = [l for l in read_text(d.log).splitlines() if "event=response_older" in l][0]
        self.assertIn("serial=5A01", line)
        self.assertIn("held_this_update=", line)
        # ...also after a restart (what is stored is the newer one).
        d.stop()
        ns.proxy.set("status", status=503)
        d.start()
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, newer))
        # A revocation replaces it at once, however old.
        revoked = self.craft(ns, status="revoked", this_update=-7200, next_update=7 * 86400)
        ns.proxy.set("body", body=revoked)
        # The 503s put the upstream in failure backoff (10 s, doubling per failed round):
        # the refresh that brings the revocation comes when it ends.
        wait_until(lambda: bytes(self.row(d, ns.leaf)["response_der"]) == revoked, 60)
        self.assertEqual(bytes(self.row(d, ns.leaf)["response_der"]), revoked)
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, revoked))

    def test_no_next_update_has_its_own_reason_and_an_optional_lifetime(self):
        """A response without nextUpdate (issue 21): refused by default with its own verdict in
        the log, /metrics and staplerctl show; kept for [upstream] accept_no_next_update when
        a deployment says so, its Expires thisUpdate plus that."""
        ns = self.behind_proxy("5F01")
        good = self.craft(ns, this_update=-60, next_update=7 * 86400)
        d = self.start_serving(ns, good)
        ns.proxy.set("body", body=lambda req: self.craft(ns, this_update=-60, next_update=None))
        self.assertTrue(self.log_has(d, "verdict=no_next_update", timeout=15), "not refused")
        row = self.row(d, ns.leaf)
        self.assertTrue(wait_until(lambda: "no_next_update" in (self.row(d, ns.leaf)
                                                               ["last_error"] or ""), 10))
        self.assertEqual(bytes(self.row(d, ns.leaf)["response_der"]), good)
        p = self.ctl(d, "show", ns.leaf.serial)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("no_next_update", p.stdout)
        st, _, body = d.request("GET", "/metrics")
        line = [l for l in body.decode().splitlines()
                if l.startswith('staplerd_responses_rejected_total{verdict="no_next_update"}')]
        self.assertEqual(len(line), 1, body[-2000:])
        self.assertGreaterEqual(float(line[0].split()[-1]), 1)
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, good))
        # A deployment that accepts them, for an hour from thisUpdate.
        d.stop()
        d.extra = FAST_REFRESH + "[upstream]\naccept_no_next_update = 1h\n"
        nonext = self.craft(ns, this_update=-60, next_update=None)
        ns.proxy.set("body", body=nonext)
        d.start()
        # The refusals backed the entry off (a wrong answer, not an absent one): the operator
        # asks for it now.
        p = self.ctl(d, "refresh", ns.leaf.serial)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(wait_until(lambda: bytes(self.row(d, ns.leaf)["response_der"]) ==
                                   nonext, 15), "the response without nextUpdate was not kept")
        row = self.row(d, ns.leaf)
        self.assertEqual(row["next_update"], row["this_update"] + 3600)
        st, h, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, nonext))
        self.assertEqual(email.utils.parsedate_to_datetime(h["expires"]).timestamp(),
                         row["next_update"])

    def test_answer_within_the_margin_is_not_served(self):
        ns = self.behind_proxy("5B01")
        # 30 s left: less than the 60 s safety margin.
        ns.proxy.set("body", body=lambda req: self.craft(ns, this_update=-60, next_update=30))
        d = self.staplerd(ns.bundle, extra=FAST_REFRESH)
        # A failure of the entry, backed off with jitter (30-60 s for a certificate with no
        # staple held): asked three times, the upstream is asked once (issue 17).
        mark = ns.proxy.count
        for _ in range(3):
            st, h, b = d.staple(ns.leaf.pem(), PEM)
            self.assertJsonError(st, h, b, 502)
            self.assertIn("safety margin", b.decode())
        self.assertEqual(ns.proxy.count - mark, 1, "fetched again on every request")
        self.assertIn("event=fetch_backoff", read_text(d.log))
        self.assertEqual(d.db_rows(), [], "a response inside the margin was stored")
        # With a good staple held: the refresh that brings a 30 s answer is a failure, backed
        # off, and the held staple is still the one served. (The backoff is in memory: a
        # restart forgets it.)
        good = self.craft(ns, this_update=-60, next_update=7 * 86400)
        ns.proxy.set("body", body=good)
        d.stop()
        d.start()
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, good))
        ns.proxy.set("body", body=lambda req: self.craft(ns, this_update=-60, next_update=30))
        row = wait_until(lambda: (lambda r: r if r and r["failures"] >= 1 else None)(
            self.row(d, ns.leaf)), 10)
        self.assertTrue(row, "the refresh was not counted as a failure")
        self.assertEqual(bytes(row["response_der"]), good)
        self.assertIn("safety margin", row["last_error"])
        # Backoff: the first retry comes after 30-60 s, not at the next tick.
        self.assertGreaterEqual(row["next_refresh_at"], int(time.time()) + 20)
        mark = ns.proxy.count
        time.sleep(2.5)
        self.assertEqual(ns.proxy.count, mark, "retried without backoff")
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual((st, got), (200, good))

    def test_revocation_within_the_margin_ends_the_good_staple(self):
        """A revocation with 30 s left cannot be handed out, but it says the good staple held
        is wrong: that one is served no more, and never comes back."""
        ns = self.behind_proxy("5B02")
        good = self.craft(ns, this_update=-60, next_update=7 * 86400)
        d = self.start_serving(ns, good)
        ns.proxy.set("body", body=lambda req: self.craft(ns, status="revoked", this_update=-60,
                                                         next_update=30))
        row = wait_until(lambda: (lambda r: r if r and r["cert_status"] == "revoked" else None)(
            self.row(d, ns.leaf)), 10)
        self.assertTrue(row, "the revocation was not kept")
        self.assertGreaterEqual(row["failures"], 1)
        self.assertIn("safety margin", row["last_error"])
        st, h, b = d.staple(ns.leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 502)
        # A good answer does not roll it back; a fresh revocation is served. (Each waits for
        # the entry's backoff: 5-10 s, as its staple ends within the minute.)
        ns.proxy.set("body", body=lambda req: self.craft(ns, this_update=0))
        mark = ns.proxy.count
        self.assertTrue(wait_until(lambda: ns.proxy.count > mark, 15), "never asked again")
        st, h, b = d.staple(ns.leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 502)
        fresh = self.craft(ns, status="revoked", this_update=0, next_update=86400)
        ns.proxy.set("body", body=fresh)
        self.assertTrue(wait_until(lambda: d.staple(ns.leaf.pem(), PEM)[2] == fresh, 15),
                        "the fresh revocation is not served")

    def test_evict_during_a_fetch_wins(self):
        ns = self.behind_proxy("5C01")
        d = self.staplerd(ns.bundle)
        st, _, first = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual(st, 200)
        self.assertIsNotNone(self.row(d, ns.leaf))
        # The upstream stalls 3 s, then answers (a fresh, valid response).
        fresh = self.craft(ns, this_update=0, next_update=7 * 86400)

        def slow(req):
            time.sleep(3)
            return fresh
        ns.proxy.set("body", body=slow)
        mark = ns.proxy.count
        result = {}

        def refresh():
            result["p"] = self.ctl(d, "refresh", ns.leaf.serial)
        t = threading.Thread(target=refresh)
        t.start()
        try:
            self.assertTrue(wait_until(lambda: ns.proxy.count > mark, 10), "no fetch started")
            p = self.ctl(d, "evict", ns.leaf.serial)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(d.db_rows(), [])
        finally:
            t.join(30)
        # Nothing came back when the fetch ended: no row, nothing in memory...
        time.sleep(0.5)
        self.assertEqual(d.db_rows(), [], "the fetch brought the evicted entry back")
        self.assertTrue(self.log_has(d, "event=fetch_discarded"))
        # ...and its waiter (the operator's refresh) got the verified answer.
        self.assertEqual(result["p"].returncode, 0, result["p"].stdout + result["p"].stderr)
        ns.proxy.set("forward")
        mark = ns.proxy.count
        st, _, got = d.staple(ns.leaf.pem(), PEM)
        self.assertEqual(st, 200)
        self.assertEqual(ns.proxy.count, mark + 1, "served from memory after the eviction")
        self.assertEqual(len(d.wait_rows(1)), 1)


if __name__ == "__main__":
    unittest.main()
