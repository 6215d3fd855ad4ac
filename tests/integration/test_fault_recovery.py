"""No fault loses a revocation or a write (issue 17, PRODUCT.md §8.11): writes resume by
themselves when a full disk gets space back, a revocation once served is never served `good`
again across a SIGTERM and a restart with the upstream down, and every staple answered while
the database refused writes is in it once the fault clears.

Run inside tests/integration/netns-run (CTest does). The tmpfs needs root and mount rights; with
CI=true a missing prerequisite fails the test instead of skipping it.
"""

import os
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, read_text, response_text,
                     setUpModule, wait_until)
from test_faults import can_mount_ro, FullDisk


def require_mounts(test):
    """Skips without mount rights, but fails under CI=true: a skip must not pass for a run."""
    if can_mount_ro():
        return
    if os.environ.get("CI") == "true":
        test.fail("needs root with unshare -m and mount (CI=true: not skipped)")
    test.skipTest("needs root with unshare -m and mount")


class FullDiskRecoveryTest(IntegrationTestCase):
    """The operator's bad day of issue 17, step by step."""

    def setUp(self):
        super().setUp()
        require_mounts(self)

    def on_small_disk(self, n_during=0, n_after=0):
        """A CA behind `openssl ocsp`, a leaf (serial 7000) and more leaves, and staplerd
        refreshing every second with its database on a 3 MiB tmpfs (FullDisk), started.
        Returns (root, port, leaf, during, after, disk, staplerd)."""
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        url = "http://127.0.0.1:%d/" % port
        leaf = self.pki.leaf(root, "leaf", serial="7000", ocsp_urls=[url])
        during = [self.pki.leaf(root, "during-%d" % i, serial="71%02d" % i, ocsp_urls=[url])
                  for i in range(n_during)]
        after = [self.pki.leaf(root, "after-%d" % i, serial="72%02d" % i, ocsp_urls=[url])
                 for i in range(n_after)]
        self.resp = self.responder(root, port=port, ndays=7)
        dbdir = os.path.join(self.tmp, "db")
        os.makedirs(dbdir)
        disk = FullDisk(dbdir, size="3m")
        self.addCleanup(disk.stop)
        d = self.staplerd(self.pki.bundle("ca.pem", root), start=False, extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        d.database = os.path.join(dbdir, "cache.db")
        disk.enter(d).start()
        return root, port, leaf, during, after, disk, d

    def rows(self, disk, d):
        out = disk.query(d.database, "SELECT serial || '=' || cert_status FROM ocsp_response")
        return dict(line.split("=") for line in out.splitlines() if "=" in line)

    def revoke(self, root, port, leaf, d):
        """Revokes leaf at the upstream and waits until staplerd serves it revoked."""
        self.resp.stop()
        root.revoke(leaf)
        self.resp = self.responder(root, port=port, ndays=7)
        self.assertTrue(wait_until(lambda: ": revoked" in response_text(
            d.staple(leaf.pem(), PEM)[2], self.tmp), 20), read_text(d.log, 3000))

    def assert_served_revoked(self, d, leaf):
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))

    def test_full_disk_revocation_space_back_sigterm_restart_upstream_down(self):
        root, port, leaf, during, after, disk, d = self.on_small_disk(20, 5)

        def rows():
            return self.rows(disk, d)

        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        self.assertTrue(wait_until(lambda: rows().get("7000") == "good", 10))
        disk.fill_and_hold(d)
        for c in during:
            st, _, body = d.staple(c.pem(), PEM)
            self.assertEqual(st, 200, body[:300])
        self.revoke(root, port, leaf, d)
        self.assertIn("fault=disk_full", read_text(d.log))
        st, _, health = d.request("GET", "/healthz")
        self.assertIn(b"pending_writes_age_s", health)
        st, _, metrics = d.request("GET", "/metrics")
        self.assertIn(b"staplerd_cache_writes_pending ", metrics)
        self.assertIn(b"staplerd_cache_writes_pending_age_seconds ", metrics)
        time.sleep(3)                     # retry passes run against the full disk
        have = rows()
        self.assertEqual(have.get("7000"), "good", have)
        self.assertFalse(any(c.serial in have for c in during), have)
        disk.free()
        want = {c.serial: "good" for c in during}
        want["7000"] = "revoked"

        def landed():
            have = rows()
            return all(have.get(s) == v for s, v in want.items())
        self.assertTrue(wait_until(landed, 15), "%s\n%s" % (rows(), read_text(d.log, 3000)))
        for c in after:
            self.assertEqual(d.staple(c.pem(), PEM)[0], 200)
        want.update({c.serial: "good" for c in after})
        self.assertTrue(wait_until(landed, 10), "%s\n%s" % (rows(), read_text(d.log, 3000)))
        time.sleep(15)                    # the run lost the revocation after 20 s
        self.assertTrue(landed(), rows())
        self.assertEqual(d.stop(), 0)
        self.assertNotIn("event=cache_writes_lost", read_text(d.log))
        self.resp.stop()                  # from here on the staples come from the cache
        d.start()
        self.assert_served_revoked(d, leaf)
        for c in during + after:
            self.assertEqual(d.staple(c.pem(), PEM)[0], 200, c.serial)
        self.assertEqual(disk.query(d.database, "PRAGMA integrity_check"), "ok")


class LockedStopTest(IntegrationTestCase):
    """Another process holds the write lock while a revocation arrives and staplerd is
    stopped: the revocation is among the writes that could not land, but it stays in the
    journal, so the restart (upstream down) serves it and writes it."""

    def test_sigterm_while_locked_keeps_the_revocation(self):
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        leaf = self.pki.leaf(root, "leaf", serial="7300",
                             ocsp_urls=["http://127.0.0.1:%d/" % port])
        resp = self.responder(root, port=port, ndays=7)
        d = self.staplerd(self.pki.bundle("ca.pem", root), extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        d.wait_rows(1)
        resp.stop()
        root.revoke(leaf)
        holder = sqlite3.connect(d.database, timeout=1, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        resp = self.responder(root, port=port, ndays=7)
        self.assertTrue(wait_until(lambda: ": revoked" in response_text(
            d.staple(leaf.pem(), PEM)[2], self.tmp), 20), read_text(d.log, 3000))
        self.assertEqual(d.stop(), 0)
        self.assertIn("event=cache_writes_lost", read_text(d.log))
        holder.execute("ROLLBACK")
        self.assertEqual(d.db_rows()[0]["cert_status"], "good")    # never written
        resp.stop()
        d.start()
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))
        self.assertTrue(wait_until(lambda: d.db_rows()[0]["cert_status"] == "revoked", 10))

if __name__ == "__main__":
    unittest.main()
