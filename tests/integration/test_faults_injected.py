"""Faults of the SQLite layer made on purpose (issue 17): staplerd_faults is staplerd with a
test-only VFS (tests/fault/sqlite_faults.c) that fails writes with SQLITE_FULL, an I/O error,
SQLITE_READONLY or SQLITE_BUSY while a control file says so, or from the Nth write for a time.
For each fault: staples and a revocation are served meanwhile, /healthz shows the backlog, and
every write lands within seconds once the fault clears. And a randomized run of submissions,
revocations, faults and restarts (SIGTERM and kill -9) checks after each restart that no
certificate ever served revoked is served good, that the database passes integrity_check, and
that every staple answered while the database was writable is still in it.

Run inside tests/integration/netns-run (CTest does). STAPLER_FAULT_SEED repeats a random run.
"""

import json
import os
import random
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, read_text, response_text,
                     setUpModule, staplerd_faults_binary, wait_until)

FAST_REFRESH = "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"
FAULT_NAMES = {"full": "disk_full", "ioerr": "io_error", "readonly": "read_only",
               "busy": "locked"}


class FaultInjectionBase(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(staplerd_faults_binary(), os.X_OK):
            self.fail("staplerd_faults not built at %s (set STAPLERD_FAULTS)"
                      % staplerd_faults_binary())
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.resp = None                  # started once the leaves are in its index
        self.fault_file = os.path.join(self.tmp, "sqlite-fault")

    def leaves(self, prefix, n):
        return [self.pki.leaf(self.root, "%s-%d" % (prefix, i), serial="%s%02d" % (prefix, i),
                              ocsp_urls=[self.url]) for i in range(n)]

    def daemon(self, env=None):
        d = self.staplerd(self.pki.bundle("ca.pem", self.root), start=False,
                          extra=FAST_REFRESH)
        d.binary = staplerd_faults_binary()
        d.env = dict(env or {}, STAPLER_SQLITE_FAULT_FILE=self.fault_file)
        return d

    def fault(self, code):
        if code is None:
            if os.path.exists(self.fault_file):
                os.unlink(self.fault_file)
            return
        with open(self.fault_file, "w") as f:
            f.write(code + "\n")

    def restart_upstream(self):
        """(Re)starts the upstream: `openssl ocsp` reads its index once, at start."""
        if self.resp is not None:
            self.resp.stop()
        self.resp = self.responder(self.root, port=self.port, ndays=7)

    def rows(self, d):
        try:
            return {r["serial"]: r["cert_status"] for r in d.db_rows()}
        except sqlite3.Error:
            return {}

    def health(self, d):
        return json.loads(d.request("GET", "/healthz")[2])

    def served_status(self, d, cert):
        """The status of the staple served for cert, or None when none is (not 200)."""
        st, _, body = d.staple(cert.pem(), PEM)
        if st != 200:
            self.last_error = body[:200]
            return None
        text = response_text(body, self.tmp)
        for s in ("good", "revoked", "unknown"):
            if ": " + s in text:
                return s
        raise AssertionError("no status in\n" + text)


class InjectedFaultTest(FaultInjectionBase):

    def check_fault(self, code):
        leaf, = self.leaves("80", 1)
        during = self.leaves("81", 5)
        after = self.leaves("84", 3)
        self.restart_upstream()
        d = self.daemon()
        d.start()
        self.assertEqual(self.served_status(d, leaf), "good")
        d.wait_rows(1)
        # The fault: staples and a revocation are served, nothing lands, /healthz says so.
        self.fault(code)
        for c in during:
            self.assertEqual(d.staple(c.pem(), PEM)[0], 200)
        self.root.revoke(leaf)
        self.restart_upstream()
        self.assertTrue(wait_until(lambda: self.served_status(d, leaf) == "revoked", 20),
                        read_text(d.log, 3000))
        self.assertIn("fault=%s" % FAULT_NAMES[code], read_text(d.log))
        h = self.health(d)
        self.assertEqual(h["status"], "degraded", h)
        self.assertGreaterEqual(h["pending_writes"], 6, h)
        time.sleep(2)                     # retry passes against the fault
        self.assertEqual(self.rows(d), {"8000": "good"})
        self.assertGreaterEqual(self.health(d)["pending_writes_age_s"], 1)
        # SIGTERM while it lasts: the revocation is among the writes lost to the database,
        # but the restart (fault gone, upstream down) serves it and writes it.
        self.assertEqual(d.stop(), 0)
        self.assertIn("event=cache_writes_lost", read_text(d.log))
        self.fault(None)
        self.resp.stop()
        d.start()
        self.assertEqual(self.served_status(d, leaf), "revoked")
        self.assertTrue(wait_until(lambda: self.rows(d).get("8000") == "revoked", 10),
                        read_text(d.log, 3000))
        # The fault again, then cleared: every staple answered meanwhile lands in seconds.
        self.restart_upstream()
        self.fault(code)
        for c in after:
            self.assertEqual(d.staple(c.pem(), PEM)[0], 200)
        time.sleep(1)
        self.assertFalse(any(c.serial in self.rows(d) for c in after))
        self.fault(None)
        want = {c.serial for c in after} | {"8000"}
        self.assertTrue(wait_until(lambda: want <= set(self.rows(d)), 10),
                        "%s\n%s" % (self.rows(d), read_text(d.log, 3000)))
        self.assertEqual(self.rows(d)["8000"], "revoked")
        self.assertTrue(wait_until(lambda: self.health(d)["status"] == "ok", 10))
        mark = len(read_text(d.log))
        self.assertEqual(d.stop(), 0)
        self.assertNotIn("event=cache_writes_lost", read_text(d.log)[mark:])

    def test_disk_full(self):
        self.check_fault("full")

    def test_io_error(self):
        self.check_fault("ioerr")

    def test_read_only(self):
        self.check_fault("readonly")

    def test_locked(self):
        self.check_fault("busy")

    def test_fault_from_the_nth_write_for_a_time(self):
        """STAPLER_SQLITE_FAULT: I/O errors from the first write after the start, for 10 s:
        the certificates asked meanwhile are served, their rows wait (none is in the database
        right after), and all land once the fault ends."""
        first = self.leaves("82", 1)
        during = self.leaves("83", 4)
        self.restart_upstream()
        d = self.daemon()
        d.start()                         # creates and migrates the database
        self.assertEqual(d.staple(first[0].pem(), PEM)[0], 200)
        d.wait_rows(1)
        self.assertEqual(d.stop(), 0)
        d.env["STAPLER_SQLITE_FAULT"] = "ioerr:after=1:for=10000"
        d.start()
        for c in during:
            self.assertEqual(d.staple(c.pem(), PEM)[0], 200)
        self.assertIn("fault=io_error", read_text(d.log))
        stored = {r["serial"] for r in d.db_rows()}       # raises if the database is unreadable
        self.assertIn(first[0].serial, stored)
        self.assertFalse({c.serial for c in during} & stored,
                         "a row landed while every write failed")
        want = {c.serial for c in first + during}
        self.assertTrue(wait_until(lambda: set(self.rows(d)) == want, 15),
                        "%s\n%s" % (self.rows(d), read_text(d.log, 3000)))


class RandomizedFaultTest(FaultInjectionBase):
    """Submissions, revocations, faults of every kind and restarts (SIGTERM and kill -9, also
    while a fault lasts), in an order drawn from a seed (printed on failure)."""

    STEPS = 50

    def test_random_faults_and_restarts(self):
        seed = int(os.environ.get("STAPLER_FAULT_SEED") or random.randrange(1 << 30))
        rng = self.rng = random.Random(seed)
        self.certs = self.leaves("9", 8)
        self.restart_upstream()
        d = self.daemon()
        d.start()
        self.served_revoked, self.durable, self.revoked_upstream = set(), set(), set()
        self.fault_on = None
        log = ["seed=%d" % seed]
        try:
            for _ in range(self.STEPS):
                action = rng.choice(["submit", "submit", "submit", "revoke", "revoke",
                                     "fault", "fault", "clear", "wait", "sigterm", "kill",
                                     "revoke_in_fault"])
                log.append(action)
                getattr(self, "step_" + action)(d, rng, log)
            self.step_clear(d, rng, log)
            self.step_sigterm(d, rng, log)
        except AssertionError as e:
            raise AssertionError("%s\nsteps: %s" % (e, " ".join(log)))
        sys.stderr.write("steps: %s\nserved revoked: %s, kept rows: %d\n" % (
            " ".join(log), sorted(self.served_revoked), len(self.durable)))

    def ask(self, d, c):
        """Asks for c's staple; records a revocation served, and checks none is rolled back."""
        status = self.served_status(d, c)
        if status == "revoked":
            self.served_revoked.add(c.serial)
        elif c.serial in self.served_revoked:
            self.assertNotEqual(status, "good", "%s was served revoked, now good" % c.serial)
        return status

    def step_submit(self, d, rng, log):
        c = rng.choice(self.certs)
        writable = self.fault_on is None and wait_until(
            lambda: self.health(d)["pending_writes"] == 0, 10)
        status = self.ask(d, c)
        log.append("%s=%s%s" % (c.serial, status or self.last_error,
                                 "" if writable else "(fault)"))
        if status is not None and writable:
            self.durable.add(c.serial)
            self.assertIn(c.serial, self.rows(d), "answered while writable, but no row")

    def step_revoke(self, d, rng, log):
        left = [c for c in self.certs if c.serial not in self.revoked_upstream]
        if not left:
            return
        c = rng.choice(left)
        self.root.revoke(c)
        self.revoked_upstream.add(c.serial)
        self.restart_upstream()
        log.append(c.serial)
        # Refreshed every second: give it the chance to be seen, faults or not.
        wait_until(lambda: self.ask(d, c) == "revoked", 3, interval=0.3)

    def step_revoke_in_fault(self, d, rng, log):
        """A revocation seen while the database refuses it: the journal's case."""
        if self.fault_on is None:
            self.step_fault(d, rng, log)
        self.step_revoke(d, rng, log)

    def step_fault(self, d, rng, log):
        self.fault_on = rng.choice(sorted(FAULT_NAMES))
        self.fault(self.fault_on)
        log.append(self.fault_on)
        self.step_wait(d, rng, log)       # refreshes meet it

    def step_wait(self, d, rng, log):
        time.sleep(rng.uniform(0.5, 2))

    def step_clear(self, d, rng, log):
        self.fault_on = None
        self.fault(None)

    def restart(self, d, kill):
        # Half the stops come while a fault lasts (if none does already).
        if self.fault_on is None and self.rng.random() < 0.5:
            self.fault_on = self.rng.choice(sorted(FAULT_NAMES))
            self.fault(self.fault_on)
        if kill:
            d.kill()
        else:
            self.assertEqual(d.stop(), 0)
        # The fault may outlive the process (a full disk); the start needs a writable file.
        self.fault_on = None
        self.fault(None)
        self.resp.stop()                  # the cache decides
        d.start()
        for c in self.certs:
            if c.serial in self.served_revoked:
                self.assertNotEqual(self.served_status(d, c), "good",
                                    "%s was served revoked, is good after the restart"
                                    % c.serial)
        have = self.rows(d)
        for serial in self.durable:
            self.assertIn(serial, have, "answered while writable, lost at a restart")
        conn = sqlite3.connect("file:%s?mode=ro" % d.database, uri=True, timeout=5)
        try:
            self.assertEqual(conn.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        finally:
            conn.close()
        self.restart_upstream()

    def step_sigterm(self, d, rng, log):
        self.restart(d, kill=False)

    def step_kill(self, d, rng, log):
        self.restart(d, kill=True)


if __name__ == "__main__":
    unittest.main()
