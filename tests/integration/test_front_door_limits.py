"""What an outsider sends cannot poison or grow the cache (docs/design.md "Anonymous /ocsp
misses cannot poison the cache", "Limits"): anonymous /ocsp misses are answered but never
become what a submission is served, an RFC 6960 "extended revoked" answer never sticks, one
client's fetches are rate limited (but not a gateway of the operator's in trusted_clients),
the cache is bounded, and unused entries go.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import http.client
import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Crafter, free_port, IntegrationTestCase, ocsp_url, read_text,
                     response_text, setUpModule)
from test_service_ocsp import cert_id, ocsp_request

PEM = "application/x-pem-file"
OCSP_REQUEST = "application/ocsp-request"
TRYLATER = bytes.fromhex("30030a0103")
EPOCH_HOLD = dict(status="revoked", revocation_time=0, revocation_reason="certificate_hold")


def cert_status(der):
    m = re.search(r"Cert Status: (\w+)", response_text(der))
    return m.group(1) if m else None


class AbuseTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.inter = self.pki.intermediate(self.root, "intermediate")
        self.pki.responder(self.inter)
        self.port = free_port()
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def leaf(self, name, serial, url=None, index=True):
        return self.pki.leaf(self.inter, name, serial=serial,
                             ocsp_urls=[url or ocsp_url(self.port)], index=index)

    def submit(self, d, leaf):
        return d.staple(leaf.pem() + self.inter.pem(), PEM)

    def submit_ok(self, d, leaf):
        st, h, body = self.submit(d, leaf)
        self.assertEqual(st, 200, body[:300])
        return body

    def ocsp(self, d, serial):
        return d.request("POST", "/ocsp", body=ocsp_request([cert_id(self.inter.der(), serial)]),
                         headers={"Content-Type": OCSP_REQUEST})

    def restart_responder(self):
        """`openssl ocsp` reads its index once: a newly issued certificate needs a restart."""
        self.resp.stop()
        os.remove(self.resp.log)                 # readiness is read from a fresh log
        self.resp = self.responder(self.inter, port=self.port, ndays=30)

    # ----------------------------------------------------------------------------------------
    # Poisoning

    def test_unknown_miss_then_issued_certificate_gets_good(self):
        known = self.leaf("known", "5001")
        future = self.leaf("future", "5002", index=False)   # not issued yet, for the responder
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file)
        self.submit_ok(d, known)                # the intermediate becomes a served issuer

        st, h, body = self.ocsp(d, future.serial)
        self.assertEqual(st, 200)
        self.assertEqual(cert_status(body), "unknown")
        # Asked again: answered from the memory of anonymous answers, still nothing stored.
        st, h, again = self.ocsp(d, future.serial)
        self.assertEqual(again, body)
        time.sleep(0.3)
        self.assertEqual(d.db_rows("WHERE serial = ?", (future.serial,)), [])

        self.inter.add_to_index(future)          # issued now
        self.restart_responder()
        staple = self.submit_ok(d, future)
        self.assertEqual(cert_status(staple), "good")
        self.assertNotEqual(staple, body)
        self.assertEqual(d.wait_rows(1, "WHERE serial = ?", (future.serial,))[0]["cert_status"],
                         "good")
        # /ocsp is now answered from the real entry.
        st, h, body = self.ocsp(d, future.serial)
        self.assertEqual((st, body), (200, staple))

    def test_extended_revoked_does_not_stick(self):
        proxy = self.fault_proxy(self.port)
        known = self.leaf("known", "5101", url=proxy.url)
        future = self.leaf("future", "5102", url=proxy.url, index=False)
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file)
        self.submit_ok(d, known)

        crafted = Crafter().response(future, self.inter, self.inter.responder_cert, **EPOCH_HOLD)
        proxy.set("body", body=crafted)
        st, h, body = self.ocsp(d, future.serial)
        self.assertEqual(st, 200)
        self.assertEqual(body, crafted)          # the anonymous client gets what the CA says
        # A submission is not answered from it, and does not keep it: "not issued" is no
        # revocation of a certificate that chains to the anchors.
        st, h, err = self.submit(d, future)
        self.assertEqual(st, 502, err[:300])
        self.assertIn(b"not issued", err)
        time.sleep(0.3)
        self.assertEqual(d.db_rows("WHERE serial = ?", (future.serial,)), [])

        self.inter.add_to_index(future)
        self.restart_responder()
        proxy.set("forward")
        staple = self.submit_ok(d, future)
        self.assertEqual(cert_status(staple), "good")
        self.assertEqual(d.wait_rows(1, "WHERE serial = ?", (future.serial,))[0]["cert_status"],
                         "good")
        # Nor does a refresh or a restart bring the hold back.
        self.assertEqual(d.stop(), 0)
        d.start(new_port=True)
        st, h, body = self.ocsp(d, future.serial)
        self.assertEqual((st, cert_status(body)), (200, "good"))

    # ----------------------------------------------------------------------------------------
    # Growth and amplification

    def test_random_serials_are_bounded_and_limited(self):
        known = self.leaf("known", "5201")
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file, extra="[limits]\nfetches_per_client = 5\n"
                          "fetch_burst = 10\n[cache]\nanonymous_entries = 8\n[log]\nlevel = debug\n")
        self.submit_ok(d, known)

        codes = {}
        retry_after = None
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15)
        t0 = time.monotonic()
        try:
            for i in range(2000):
                serial = "%08X" % (0x10000000 + (i * 7919 + 12345) % 0x0fffffff)
                conn.request("POST", "/ocsp", body=ocsp_request([cert_id(self.inter.der(),
                             serial)]), headers={"Content-Type": OCSP_REQUEST})
                r = conn.getresponse()
                body = r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
                if r.status == 429:
                    self.assertEqual(body, TRYLATER)
                    self.assertEqual(r.getheader("Content-Type"), "application/ocsp-response")
                    retry_after = int(r.getheader("Retry-After"))
        finally:
            conn.close()
        elapsed = time.monotonic() - t0
        allowed = 10 + 5 * elapsed + 2
        self.assertLessEqual(codes.get(200, 0), allowed, codes)
        self.assertGreater(codes.get(429, 0), 2000 - allowed - 1, codes)
        self.assertGreaterEqual(retry_after, 1)
        time.sleep(0.3)
        self.assertEqual(len(d.db_rows()), 1)    # the submission only
        held = [int(n) for n in re.findall(r"anonymous_fetched .* held=(\d+)", read_text(d.log))]
        self.assertTrue(held)
        self.assertLessEqual(max(held), 8)

        # Cache hits are not counted: the known staple is still served, both ways.
        st, h, body = self.submit(d, known)
        self.assertEqual(st, 200)
        st, h, body = self.ocsp(d, known.serial)
        self.assertEqual((st, cert_status(body)), (200, "good"))
        # A submission that needs a fetch waits its turn too, and gets it after Retry-After.
        other = self.leaf("other", "5202")
        self.restart_responder()
        for i in range(100):                    # the bucket refilled meanwhile: empty it
            if self.ocsp(d, "%08X" % (0x20000000 + i))[0] == 429:
                break
        st, h, body = self.submit(d, other)
        self.assertEqual(st, 429, body[:300])
        wait = int(h.get("retry-after"))
        self.assertGreaterEqual(wait, 1)
        time.sleep(wait)
        self.submit_ok(d, other)

    def submit_from(self, d, leaf, source):
        """POST /v1/staple from the loopback address source (127.0.0.0/8 is all local)."""
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15,
                                          source_address=(source, 0))
        try:
            conn.request("POST", "/v1/staple", body=leaf.pem() + self.inter.pem(),
                         headers={"Content-Type": PEM})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def test_trusted_gateway_submissions_are_not_limited(self):
        """A head-end gateway listed in trusted_clients submits a fleet without the
        per-client fetch limit; any other client's submissions stay limited."""
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file, extra="[limits]\nfetches_per_client = 1\n"
                          "fetch_burst = 2\ntrusted_clients = 127.0.0.2\n")
        gateway = [self.submit_from(d, self.leaf("gw%d" % i, "%X" % (0x6100 + i)), "127.0.0.2")
                   for i in range(12)]
        self.assertEqual(gateway, [200] * 12)
        other = [self.submit_from(d, self.leaf("o%d" % i, "%X" % (0x6200 + i)), "127.0.0.1")
                 for i in range(12)]
        self.assertIn(429, other)
        self.assertLessEqual(other.count(200), 2 + 1 + 2)     # the burst, then 1 a second

    def test_entries_cap_refuses_new_work_and_serves_cached(self):
        a, b, c = (self.leaf(n, s) for n, s in (("a", "5301"), ("b", "5302"), ("c", "5303")))
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file, extra="[cache]\nmax_entries = 2\n")
        staple_a = self.submit_ok(d, a)
        self.submit_ok(d, b)
        st, h, body = self.submit(d, c)
        self.assertEqual(st, 503, body[:300])
        self.assertIn(b"cache full", body)
        self.assertEqual(self.submit_ok(d, a), staple_a)
        st, h, body = self.ocsp(d, a.serial)
        self.assertEqual((st, body), (200, staple_a))
        time.sleep(0.3)
        self.assertEqual(len(d.db_rows()), 2)

    def test_unused_entry_is_not_refreshed_and_is_purged(self):
        used, idle = self.leaf("used", "5401"), self.leaf("idle", "5402")
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file, extra="[cache]\nunused_ttl = 3s\n[refresh]\n"
                          "window = 30d\nmin_interval = 1s\nmax_interval = 2s\n"
                          "check_interval = 1s\n")
        self.submit_ok(d, used)
        self.submit_ok(d, idle)
        first = d.wait_rows(1, "WHERE serial = ?", (used.serial,))[0]["fetched_at"]
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            self.submit_ok(d, used)             # asked for: kept and refreshed
            time.sleep(0.5)
        self.assertEqual(d.db_rows("WHERE serial = ?", (idle.serial,)), [])
        log = read_text(d.log)
        self.assertRegex(log, r"purged serial=%s .*not asked for" % idle.serial)
        row, = d.db_rows("WHERE serial = ?", (used.serial,))
        self.assertGreater(row["fetched_at"], first)
        self.assertGreaterEqual(row["used_at"], row["fetched_at"] - 2)
        # Once purged, the idle entry is not fetched again.
        purged_at = log.rindex("purged serial=%s" % idle.serial)
        self.assertNotIn("serial=%s" % idle.serial, log[purged_at + 20:].replace(
            "evicted serial=%s" % idle.serial, ""))

    def test_downtime_does_not_count_as_unused(self):
        """unused_ttl 8 s (a grace of half of it at start), an entry refreshed every ~14 s: the
        daemon is down 11 s, longer than the TTL; the entry comes due after the restart and is
        refreshed, not purged, because nobody could ask for it while staplerd was down."""
        leaf = self.leaf("leaf", "5501")
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        d = self.staplerd(self.ca_file, extra="[cache]\nunused_ttl = 8s\n[refresh]\n"
                          "window = 30d\nmin_interval = 14s\nmax_interval = 14s\n"
                          "check_interval = 1s\n")
        t0 = time.monotonic()
        self.submit_ok(d, leaf)
        first = d.wait_rows(1)[0]["fetched_at"]
        self.assertEqual(d.stop(), 0)
        time.sleep(max(0, 11 - (time.monotonic() - t0)))
        d.start(new_port=True)
        # Due at 12.25-14 s after the fetch: refreshed then, a second fetch.
        rows = d.wait_rows(1, "WHERE fetched_at > ?", (first,), timeout=max(1, 16.5 - (
            time.monotonic() - t0)))
        self.assertEqual(len(rows), 1, read_text(d.log)[-3000:])
        self.assertNotIn("purged serial=%s" % leaf.serial, read_text(d.log))


if __name__ == "__main__":
    unittest.main()
