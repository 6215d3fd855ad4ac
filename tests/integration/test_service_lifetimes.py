"""Certificates at the edges of revocation and time (issue 21, item 3): one that carries RFC
9608's noRevAvail (its issuer will never publish revocation information for it) makes no
upstream contact and gets a clear answer of its own, alone and in a chain; one that never
expires (notAfter in 9999, as in GB smart metering) is stapled, stored, shown and refreshed
like any other, with no date arithmetic overflowing.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import calendar
import datetime
import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, ocsp_url, PEM, run, setUpModule)

NO_REV_AVAIL = "2.5.29.56 = ASN1:NULL\n"


class LifetimesTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.root_port, self.port, self.fwd_port = free_port(), free_port(), free_port()
        self.inter = self.pki.intermediate(self.root, ocsp_urls=[ocsp_url(self.root_port)])
        self.pki.responder(self.inter)
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def start(self):
        self.responder(self.root, port=self.root_port, ndays=30)
        self.responder(self.inter, port=self.port, ndays=30)
        # The leaves name a counting forwarder in front of their issuer's responder.
        self.fwd = self.forwarder(self.port, port=self.fwd_port)
        return self.staplerd(self.ca_file)

    def test_no_rev_avail_makes_no_upstream_contact(self):
        leaf = self.pki.leaf(self.inter, "no-revocation", serial="9A01",
                             ocsp_urls=[ocsp_url(self.fwd_port)], extra_ext=NO_REV_AVAIL)
        out = run(["openssl", "x509", "-in", leaf.cert, "-noout", "-text"]).stdout
        self.assertIn("No Revocation Available", out)     # id-ce-noRevAvail, 2.5.29.56
        d = self.start()
        # Alone: 422 with its own reason, and nothing asked upstream.
        st, h, body = d.staple(leaf.pem() + self.inter.pem(), PEM)
        doc = self.assertJsonError(st, h, body, 422)
        self.assertIn("noRevAvail", doc["error"])
        # In a chain: the leaf's entry says why; the intermediate's staple is served.
        st, h, body = d.request("POST", "/v1/staples", body=leaf.pem() + self.inter.pem(),
                                headers={"Content-Type": PEM})
        self.assertEqual(st, 200, body[:300])
        entries = json.loads(body)["staples"]
        self.assertEqual([e["serial"] for e in entries], ["9A01", self.inter.serial])
        self.assertIn("noRevAvail", entries[0]["error"])
        self.assertNotIn("response", entries[0])
        self.assertEqual(entries[1]["status"], "good")
        self.assertEqual(self.fwd.count, 0)
        self.assertEqual(d.db_rows("WHERE serial = '9A01'"), [])

    def test_certificate_that_never_expires(self):
        end = datetime.date(9999, 12, 31)
        days = (end - datetime.datetime.utcnow().date()).days
        leaf = self.pki.leaf(self.inter, "forever", serial="9B01",
                             ocsp_urls=[ocsp_url(self.fwd_port)], days=days)
        self.assertEqual(time.gmtime(leaf.not_after()).tm_year, 9999)
        d = self.start()
        st, h, staple = d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, staple[:300])
        self.assertStapleVerifies(staple, self.inter, self.ca_file, leaf)
        row = d.wait_rows(1, "WHERE serial = '9B01'")[0]
        # Its chain ends before it does: the row's bound is the intermediate's notAfter, and
        # nothing wrapped (a year-9999 time is positive and past 2038).
        self.assertGreater(row["cert_not_after"], time.time())
        self.assertLessEqual(row["cert_not_after"], leaf.not_after())
        self.assertGreater(row["next_refresh_at"], time.time())
        self.assertLess(row["next_refresh_at"], row["next_update"])
        # The operator's view, and /healthz and /metrics, take it.
        p = run([os.environ.get("STAPLERCTL", "staplerctl"), "-c", d.conf, "show", "9B01"])
        self.assertIn("9B01", p.stdout)
        st, _, body = d.request("GET", "/healthz")
        self.assertEqual(json.loads(body)["status"], "ok")
        st, _, body = d.request("GET", "/metrics")
        self.assertEqual(st, 200)
        # A certificate whose own chain never expires either: a root and a leaf of 9999.
        root = self.pki.root("eternal-root", days=days)
        self.pki.responder(root)
        port = free_port()
        forever = self.pki.leaf(root, "eternal", serial="9C01", ocsp_urls=[ocsp_url(port)],
                                days=days)
        self.responder(root, port=port, ndays=30)
        d.stop()
        d.ca_file = self.pki.bundle("ca-bundle-2.pem", self.root, root)
        d.start()
        st, h, staple = d.staple(forever.pem(), PEM)
        self.assertEqual(st, 200, staple[:300])
        row = d.wait_rows(1, "WHERE serial = '9C01'")[0]
        self.assertEqual(time.gmtime(row["cert_not_after"]).tm_year, 9999)
        self.assertGreater(row["next_refresh_at"], time.time())
        self.assertLess(row["next_refresh_at"], row["next_update"])


if __name__ == "__main__":
    unittest.main()
