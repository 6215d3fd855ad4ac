"""No fault loses a revocation or a write (issue 17, docs/contract.md §8.11): writes resume by
themselves when a full disk gets space back, a revocation once served is never served `good`
again across a SIGTERM and a restart with the upstream down, and every staple answered while
the database refused writes is in it once the fault clears.

Run inside tests/integration/netns-run (CTest does). The tmpfs needs root and mount rights; with
CI=true a missing prerequisite fails the test instead of skipping it.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, read_text, response_text,
                     setUpModule, staplerd_binary, wait_until)
from test_faults_database import FullDisk, require_mounts


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
        self.resp = self.responder(root, port=port, ndays=7, restartable=True)
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
        self.revoke_at_upstream(self.resp, leaf)
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
        resp = self.responder(root, port=port, ndays=7, restartable=True)
        d = self.staplerd(self.pki.bundle("ca.pem", root), extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        d.wait_rows(1)
        holder = sqlite3.connect(d.database, timeout=1, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        self.revoke_at_upstream(resp, leaf)
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


class ReadOnlyMount:
    """The database directory bind-mounted read-only in a mount namespace of its own, kept
    alive by a holder process (as FullDisk), so staplerd started in it (nsenter) sees the
    read-only mount, and remount(rw) makes it writable under the running daemon."""

    def __init__(self, dir):
        self.dir = dir
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && echo ready && '
             'exec sleep 600', "sh", dir], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True)
        if self.holder.stdout.readline().strip() != "ready":
            raise AssertionError("cannot bind-mount read-only")

    def enter(self, d):
        d.prefix = ["nsenter", "-t", str(self.holder.pid), "-m"]
        return d

    def remount(self, mode):
        subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "mount", "-o",
                        "remount,bind,%s" % mode, self.dir], check=True, timeout=10)

    def stop(self):
        self.holder.kill()
        self.holder.wait(timeout=10)


# Root without the capabilities that ignore file modes: a file at 0444 is read-only to it.
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


class ReadOnlyStartTest(IntegrationTestCase):
    """A database that can be read but not written at start-up (a read-only remount, a file
    at mode 0444) is served from: the daemon starts, serves what is on disk, reports
    degraded/database_not_writable, keeps new staples in memory, and writes them once the
    database can be written, noticed without a restart. One that cannot be read is still a
    start-up error."""

    def setUp(self):
        super().setUp()
        require_mounts(self)
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.port = free_port()
        url = "http://127.0.0.1:%d/" % self.port
        self.old = self.pki.leaf(self.root, "old", serial="7400", ocsp_urls=[url])
        self.new = self.pki.leaf(self.root, "new", serial="7401", ocsp_urls=[url])
        self.resp = self.responder(self.root, port=self.port, ndays=7)
        self.dbdir = os.path.join(self.tmp, "db")
        os.makedirs(self.dbdir)
        self.d = self.staplerd(self.pki.bundle("ca.pem", self.root), start=False)
        self.d.database = os.path.join(self.dbdir, "cache.db")
        self.d.admin_socket = os.path.join(self.tmp, "admin.sock")
        # A first run caches the old certificate's staple.
        self.d.start()
        st, _, self.old_staple = self.d.staple(self.old.pem(), PEM)
        self.assertEqual(st, 200)
        self.d.wait_rows(1)
        self.assertEqual(self.d.stop(), 0)

    def serials(self):
        return sorted(r["serial"] for r in self.d.db_rows())

    def check_degraded_then_written(self, make_writable):
        d = self.d
        st, _, body = d.staple(self.old.pem(), PEM)
        self.assertEqual((st, body), (200, self.old_staple))
        self.assertIn("event=database_not_writable", read_text(d.log))
        st, _, health = d.request("GET", "/healthz")
        doc = json.loads(health)
        self.assertEqual(doc["status"], "degraded", doc)
        self.assertIn("database_not_writable", [r["reason"] for r in doc["reasons"]])
        # A new staple is served, kept in memory, not written.
        st, _, body = d.staple(self.new.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        time.sleep(1)
        self.assertEqual(self.serials(), ["7400"])
        self.assertEqual(json.loads(d.request("GET", "/healthz")[2])["pending_writes"], 1)
        make_writable()
        self.assertTrue(wait_until(lambda: self.serials() == ["7400", "7401"], 15),
                        read_text(d.log, 3000))
        self.assertTrue(wait_until(lambda: json.loads(d.request("GET", "/healthz")[2])[
            "status"] == "ok", 10))
        self.assertEqual(d.stop(), 0)
        self.assertNotIn("event=cache_writes_lost", read_text(d.log))
        self.resp.stop()
        d.prefix = []
        d.start()                         # warm, from the rows written
        self.assertEqual(d.staple(self.new.pem(), PEM)[0], 200)

    def test_read_only_remount_at_start(self):
        mount = ReadOnlyMount(self.dbdir)
        self.addCleanup(mount.stop)
        mount.enter(self.d).start()
        self.check_degraded_then_written(lambda: mount.remount("rw"))

    def test_database_file_mode_0444_at_start(self):
        os.chmod(self.d.database, 0o444)
        self.d.prefix = NO_DAC
        self.d.start()
        self.check_degraded_then_written(lambda: os.chmod(self.d.database, 0o644))

    def test_database_that_cannot_be_read_is_a_clear_startup_error(self):
        os.chmod(self.d.database, 0)
        self.d.write_config()
        p = subprocess.run(NO_DAC + [staplerd_binary(), "-c", self.d.conf],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn("event=startup_failed", p.stderr)
        self.assertIn(self.d.database, p.stderr)
        self.assertIn("cannot be read", p.stderr)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)


if __name__ == "__main__":
    unittest.main()
