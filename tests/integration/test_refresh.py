"""The refresh scheduler and the failure policy of the real staplerd (docs/contract.md §8 rules 2,
5, 6): staples are refreshed in the background, and no upstream fault costs a good staple.

The upstream is OpenSSL's `openssl ocsp`; faults it cannot produce come from harness.FaultProxy
(in front of it) and harness.Crafter (responses signed with chosen contents). Run inside
tests/integration/netns-run (CTest does).
"""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Crafter, free_port, IntegrationTestCase, PEM, read_text, response_text,
                     setUpModule, wait_until)


# Due one second after every fetch, checked every second: the scheduler's bounds, not a
# sleep in staplerd, decide how often the upstream is asked.
FAST_REFRESH = "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"



class RefreshTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.signer = self.pki.responder(self.root)
        self.port = free_port()
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def leaf_behind_proxy(self, name, serial, revoked=False):
        """A leaf whose AIA points at a FaultProxy in front of the root's `openssl ocsp`."""
        proxy = self.fault_proxy(self.port)
        leaf = self.pki.leaf(self.root, name, serial=serial, ocsp_urls=[proxy.url],
                             revoked=revoked)
        return leaf, proxy

    def row(self, d, leaf):
        rows = d.db_rows("WHERE serial = ?", (leaf.serial,))
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def staple_ok(self, d, leaf):
        st, h, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        return body

    def wait_row(self, d, leaf, pred, timeout=15):
        def probe():
            try:
                r = self.row(d, leaf)
            except Exception:
                return None
            return r if pred(r) else None
        r = wait_until(probe, timeout, interval=0.1)
        if r is None:
            self.fail("row for %s never matched; now %r\n%s" % (
                leaf.serial, {k: v for k, v in self.row(d, leaf).items() if k != "response_der"
                              and k != "request_der"}, open(d.log).read()[-3000:]))
        return r

    # ----------------------------------------------------------------------------------------

    def test_faults_keep_the_last_good_staple(self):
        """Every fault: the cached staple is still served byte for byte, the row is unchanged
        but for the failure record, and the upstream is not asked again at once."""
        crafter = Crafter()
        other = self.pki.leaf(self.root, "other", serial="7FFF", ocsp_urls=())
        stranger_ca = self.pki.root("stranger")
        stranger = self.pki.responder(stranger_ca, "stranger-ocsp")
        badsig_port = free_port()
        faults = [
            ("garbage", lambda p, leaf: p.set("body", body=b"\x00garbage\xff" * 40)),
            ("http500", lambda p, leaf: p.set("status", status=500)),
            ("http404", lambda p, leaf: p.set("status", status=404)),
            ("trylater", lambda p, leaf: p.set("body", body=crafter.unsuccessful("TRY_LATER"))),
            ("internalerror", lambda p, leaf: p.set(
                "body", body=crafter.unsuccessful("INTERNAL_ERROR"))),
            ("unauthorized", lambda p, leaf: p.set(
                "body", body=crafter.unsuccessful("UNAUTHORIZED"))),
            ("stall", lambda p, leaf: p.set("stall", stall=6)),
            ("closed", lambda p, leaf: p.set("close")),
            ("badsig", lambda p, leaf: setattr(p, "upstream_port", badsig_port)),
            ("other_cert", lambda p, leaf: p.set("body", body=lambda req: crafter.response(
                other, self.root, self.signer))),
            ("wrong_signer", lambda p, leaf: p.set("body", body=lambda req: crafter.response(
                leaf, self.root, stranger))),
            ("expired", lambda p, leaf: p.set("body", body=lambda req: crafter.response(
                leaf, self.root, self.signer, this_update=-7200, next_update=-3600))),
            ("future", lambda p, leaf: p.set("body", body=lambda req: crafter.response(
                leaf, self.root, self.signer, this_update=3600, next_update=90000))),
            ("no_next_update", lambda p, leaf: p.set("body", body=lambda req: crafter.response(
                leaf, self.root, self.signer, next_update=None))),
        ]
        cases = []
        for i, (name, _) in enumerate(faults):
            leaf, proxy = self.leaf_behind_proxy("leaf-" + name, "%04X" % (0x2000 + i))
            cases.append((name, leaf, proxy))
        self.responder(self.root, port=self.port, ndays=7)
        self.responder(self.root, port=badsig_port, ndays=7, extra_args=["-badsig"])
        d = self.staplerd(self.ca_file, timeout="2s", extra=FAST_REFRESH)

        before = {}
        for name, leaf, proxy in cases:
            body = self.staple_ok(d, leaf)
            before[name] = (body, self.row(d, leaf))
        # Stop refreshing successfully: every proxy turns to its fault at once.
        for (name, set_fault), (_, leaf, proxy) in zip(faults, cases):
            set_fault(proxy, leaf)
        marks = {name: proxy.count for name, _, proxy in cases}

        for name, leaf, proxy in cases:
            body, row0 = before[name]
            row = self.wait_row(d, leaf, lambda r: r["failures"] >= 1)
            with self.subTest(fault=name):
                self.assertGreater(proxy.count, marks[name], "%s: fault never exercised" % name)
                self.assertTrue(row["last_error"], row)
                for col in ("response_der", "this_update", "next_update", "produced_at",
                            "fetched_at", "cert_status", "ocsp_url", "created_at"):
                    self.assertEqual(row[col], row0[col], "%s: %s changed" % (name, col))
                self.assertGreater(row["next_refresh_at"], int(time.time()),
                                   "%s: no backoff" % name)
                self.assertEqual(self.staple_ok(d, leaf), body, "%s: served bytes changed" % name)
        # Backoff, not a refetch loop: after the failure, each upstream sees at most one more
        # request over the next seconds (the first retry waits >= 30 s).
        counts = {name: proxy.count for name, _, proxy in cases}
        time.sleep(3)
        for name, leaf, proxy in cases:
            self.assertLessEqual(proxy.count - counts[name], 1, "%s: %r" % (name, proxy.requests))
            self.assertIsNone(d.proc.poll())
        # The failure record says what went wrong.
        self.assertIn("bad_signature", self.row(d, cases[8][1])["last_error"])
        self.assertIn("wrong_certid", self.row(d, cases[9][1])["last_error"])
        self.assertIn("bad_signer", self.row(d, cases[10][1])["last_error"])
        self.assertIn("expired", self.row(d, cases[11][1])["last_error"])
        self.assertIn("not_yet_valid", self.row(d, cases[12][1])["last_error"])
        self.assertIn("try_later", self.row(d, cases[3][1])["last_error"])
        self.assertIn("timed out", self.row(d, cases[6][1])["last_error"])

    def test_background_refresh_is_bounded(self):
        leaf, proxy = self.leaf_behind_proxy("leaf", "3001")
        self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file,
                          extra="[refresh]\nwindow = 30d\nmin_interval = 2s\ncheck_interval = 1s\n")
        first = self.staple_ok(d, leaf)
        row0 = self.row(d, leaf)
        self.assertGreater(row0["next_refresh_at"], row0["fetched_at"])
        t0, n0 = time.time(), proxy.count
        row = self.wait_row(d, leaf, lambda r: r["fetched_at"] > row0["fetched_at"])
        self.assertNotEqual(bytes(row["response_der"]), first)
        self.assertEqual(row["failures"], 0)
        self.assertIsNone(row["last_error"])
        again = self.staple_ok(d, leaf)
        self.assertEqual(again, bytes(row["response_der"]))
        self.assertIn("good", response_text(again, self.tmp))
        # min_interval 2 s: over about 6 s at most 6 / 2 + 1 more requests.
        time.sleep(max(0, 6 - (time.time() - t0)))
        elapsed = time.time() - t0
        self.assertLessEqual(proxy.count - n0, int(elapsed / 2) + 1, proxy.requests)
        self.assertGreaterEqual(proxy.count - n0, 1)

    def test_revoked_replaces_good_and_is_never_rolled_back(self):
        leaf, proxy = self.leaf_behind_proxy("leaf", "3101")
        resp = self.responder(self.root, port=self.port, ndays=7, restartable=True)
        d = self.staplerd(self.ca_file, extra=FAST_REFRESH)
        good = self.staple_ok(d, leaf)
        self.assertIn(": good", response_text(good, self.tmp))
        # The CA revokes it (the responder, restarted with no gap, reads its index again).
        self.revoke_at_upstream(resp, leaf)
        self.wait_row(d, leaf, lambda r: r["cert_status"] == "revoked")
        revoked = self.staple_ok(d, leaf)
        self.assertIn(": revoked", response_text(revoked, self.tmp))
        # A responder that says good again (a restored backup, an attacker replaying) is not
        # believed: the revoked staple stays.
        crafter = Crafter()
        proxy.set("body", body=lambda req: crafter.response(leaf, self.root, self.signer))
        row = self.wait_row(d, leaf, lambda r: r["failures"] >= 1)
        self.assertEqual(row["cert_status"], "revoked")
        self.assertIn("revoked", row["last_error"])
        self.assertEqual(self.staple_ok(d, leaf), bytes(row["response_der"]))
        self.assertIn(": revoked", response_text(self.staple_ok(d, leaf), self.tmp))

    def test_expired_staple_is_not_served_and_entry_keeps_retrying(self):
        crafter = Crafter()
        leaf, proxy = self.leaf_behind_proxy("leaf", "3201")
        # A response valid for 64 s: staplerd stops serving 60 s before nextUpdate.
        expires = int(time.time()) + 64
        fixed = crafter.response(leaf, self.root, self.signer, this_update=-10,
                                 next_update=expires - int(time.time()))
        proxy.set("body", body=fixed)
        d = self.staplerd(self.ca_file, extra=FAST_REFRESH)
        self.assertEqual(self.staple_ok(d, leaf), fixed)
        proxy.set("status", status=503)
        wait_until(lambda: time.time() > expires - 60 + 1, 10)
        st, h, b = d.staple(leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 502)
        row = self.row(d, leaf)
        self.assertEqual(bytes(row["response_der"]), fixed)
        self.assertGreaterEqual(row["failures"], 1)
        # When the upstream is back, the entry recovers (with a newer answer: an older one
        # than the staple held is never kept).
        proxy.set("body", body=lambda req: crafter.response(leaf, self.root, self.signer,
                                                            this_update=0))
        st, h, b = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, b[:300])
        self.assertNotEqual(b, fixed)

    def test_dead_upstream_is_not_hammered(self):
        """Many entries due at once on one upstream that just died: after the first batch fails,
        the upstream is left alone for its backoff instead of getting every entry's retry."""
        proxy = self.fault_proxy(self.port)
        leaves = [self.pki.leaf(self.root, "leaf-%d" % i, serial="%04X" % (0x4000 + i),
                                ocsp_urls=[proxy.url]) for i in range(48)]
        self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=FAST_REFRESH)
        for leaf in leaves:
            self.staple_ok(d, leaf)
        proxy.set("close")
        n0 = proxy.count
        time.sleep(4)
        # The first round's failures put the host in backoff (10 s): the refresh timer gives it
        # no new work, and the refreshes already queued for it wait the backoff out instead of
        # failing too (a round is the host's limit in force, at most 4 times that queued).
        tried = proxy.count - n0
        self.assertGreater(tried, 0)
        self.assertLessEqual(tried, 32, "the dead upstream got %d requests" % tried)
        # Every entry keeps serving its staple meanwhile.
        for leaf in leaves[:5]:
            self.staple_ok(d, leaf)

    def test_warm_start_spreads_due_entries(self):
        leaves = []
        proxy = self.fault_proxy(self.port)
        for i in range(12):
            leaves.append(self.pki.leaf(self.root, "leaf-%d" % i, serial="%04X" % (0x5000 + i),
                                        ocsp_urls=[proxy.url]))
        self.responder(self.root, port=self.port, ndays=7)
        # Ticks every 10 s: a restart spreads due entries over the next 5 ticks (50 s).
        d = self.staplerd(self.ca_file, extra="[refresh]\nwindow = 30d\nmin_interval = 1s\n"
                          "check_interval = 10s\n")
        for leaf in leaves:
            self.staple_ok(d, leaf)
        self.assertEqual(d.stop(), 0)
        # Every entry is due (min_interval 1 s has passed), strictly before the restart second.
        time.sleep(2.1)
        before = {r["serial"]: r["next_refresh_at"] for r in d.db_rows()}
        self.assertTrue(all(t <= time.time() for t in before.values()), before)
        t0 = int(time.time())
        n0 = proxy.count
        d.start(new_port=True)
        # The spread is written from the loop once the rows are loaded, in slices.
        self.assertTrue(wait_until(lambda: all(
            r["next_refresh_at"] > t0 for r in d.db_rows()), 10), read_text(d.log, 3000))
        after = {r["serial"]: r["next_refresh_at"] for r in d.db_rows()}
        self.assertEqual(set(after), set(before))
        for serial, t in after.items():
            self.assertGreaterEqual(t, t0, serial)
            self.assertLess(t, t0 + 50 + 2, serial)
        self.assertGreater(len(set(after.values())), 3, "not spread: %r" % after)
        self.assertEqual(proxy.count, n0, "the restart refetched at once")

    def test_restart_with_upstream_down_serves_at_once(self):
        leaf, proxy = self.leaf_behind_proxy("leaf", "3301")
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=FAST_REFRESH)
        first = self.staple_ok(d, leaf)
        self.assertEqual(d.stop(), 0)
        resp.stop()
        proxy.set("close")
        n0 = proxy.count
        d.start(new_port=True)
        self.assertEqual(self.staple_ok(d, leaf), first)
        # The warm start spreads due entries (over 5 check intervals) instead of refetching
        # at once; the refresh that comes then fails, and does not take the staple away.
        self.assertTrue(wait_until(lambda: self.row(d, leaf)["failures"] >= 1, 15),
                        "no refresh failed after the restart")
        self.assertGreater(proxy.count, n0)
        self.assertEqual(self.staple_ok(d, leaf), first)

    def test_refresh_is_not_capped_at_one_backlog_per_tick(self):
        """100 entries due at once on one upstream: the scheduler gives a host at most 32 per
        tick (REFRESH_HOST_BACKLOG), and catch-up ticks follow while it makes progress, so all
        are refreshed within seconds, not over four 5-second check intervals."""
        leaves = [self.pki.leaf(self.root, "bulk%d" % i, serial="%X" % (0x7100 + i),
                                ocsp_urls=["http://127.0.0.1:%d/" % self.port])
                  for i in range(100)]
        self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 3600s\ncheck_interval = 5s\n"))
        for leaf in leaves:
            self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        d.wait_rows(100)
        # All due now: the next tick finds 100.
        conn = __import__("sqlite3").connect(d.database, timeout=5)
        conn.execute("UPDATE ocsp_response SET next_refresh_at = 0")
        conn.commit()
        conn.close()
        t0 = time.time()

        def refreshed():
            rows = d.db_rows()
            return all(r["fetched_at"] >= t0 - 1 and r["next_refresh_at"] > t0 + 600
                       for r in rows)
        # The first tick comes within a check interval (5 s); the catch-up ticks then take
        # the rest within a second or two (before, one tick per 5 s took 32 each).
        self.assertTrue(wait_until(refreshed, 9), [l for l in open(d.log).read().splitlines()
                                                   if "refresh_tick" in l])


if __name__ == "__main__":
    unittest.main()
