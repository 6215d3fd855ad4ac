"""Faults of the database and of long-lived answers (issue 11): a cache that cannot be created
is a startup error that says what to do (one that exists but cannot be written is served
read-only: test_faults_recovery.py), and a response valid for a century is still asked about
again within [refresh] max_interval.

Run inside tests/integration/netns-run (CTest does); the read-only cases also take a private
mount namespace (unshare -m) for a read-only bind mount of the database directory.
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

from harness import (free_port, IntegrationTestCase, LoopbackHTTPServer, PEM, read_text,
                     response_text, run, setUpModule, staplerd_binary, wait_until)


def can_mount_ro():
    p = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && "
                        "mount -o remount,bind,ro /tmp && true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    return p.returncode == 0


def require_mounts(test):
    """Skips without mount rights, but fails under CI=true: a skip must not pass for a run."""
    if not can_mount_ro():
        test.skip_unless_ci("needs root with unshare -m and mount")


class DatabaseFaultTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)
        self.dbdir = os.path.join(self.tmp, "db")
        os.makedirs(self.dbdir)

    def start_ro(self, d):
        """Runs staplerd with d's config while its database directory is mounted read-only;
        returns (exit code, stderr). It must refuse to start, so it exits by itself."""
        d.write_config()
        script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
                  'exec "$2" -c "$3"')
        p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", self.dbdir,
                            staplerd_binary(), d.conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        return p.returncode, p.stderr

    def test_database_cannot_be_created_is_a_clear_startup_error(self):
        require_mounts(self)
        d = self.staplerd(self.ca_file, start=False)
        d.database = os.path.join(self.dbdir, "cache.db")
        code, err = self.start_ro(d)
        self.assertNotEqual(code, 0, err)
        self.assertIn("cannot open or create the database", err)
        self.assertIn("writable", err)

    def test_database_locked_by_another_process_is_named(self):
        d = self.staplerd(self.ca_file, start=False)
        d.database = os.path.join(self.dbdir, "cache.db")
        d.start()
        self.assertEqual(d.stop(), 0)
        holder = sqlite3.connect(d.database, timeout=1, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            d.write_config()
            p = subprocess.run([staplerd_binary(), "-c", d.conf], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=30)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn("locked by another process", p.stderr)


class LockedDatabaseTest(IntegrationTestCase):
    """Another process holds the database's write lock (BEGIN IMMEDIATE, as a long backup or a
    second writer would): the event loop does not wait on it. Writes are kept in memory and land
    once the lock is gone; a revocation seen meanwhile is served at once and survives a
    restart."""

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.ca_file = self.pki.bundle("ca.pem", self.root)

    def lock(self, d):
        holder = sqlite3.connect(d.database, timeout=1, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        self.addCleanup(holder.close)
        return holder

    def test_serving_and_fetching_do_not_wait_on_the_lock(self):
        cached = self.pki.leaf(self.root, "cached", serial="5001", ocsp_urls=[self.url])
        fresh = self.pki.leaf(self.root, "fresh", serial="5002", ocsp_urls=[self.url])
        self.resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file)
        st, _, want = d.staple(cached.pem(), PEM)
        self.assertEqual(st, 200)
        d.wait_rows(1)
        holder = self.lock(d)
        t0 = time.monotonic()
        st, _, body = d.staple(cached.pem(), PEM, timeout=10)
        self.assertEqual((st, body), (200, want))
        self.assertLess(time.monotonic() - t0, 1.0)
        # A miss: fetched, verified and answered while its row cannot be written.
        t0 = time.monotonic()
        st, _, body = d.staple(fresh.pem(), PEM, timeout=10)
        self.assertEqual(st, 200, body[:300])
        self.assertLess(time.monotonic() - t0, 1.0)
        st, _, health = d.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertIn("event=cache_write_failed", read_text(d.log))
        holder.execute("ROLLBACK")
        rows = d.wait_rows(2, timeout=10)
        self.assertEqual(sorted(r["serial"] for r in rows), ["5001", "5002"])
        self.assertTrue(wait_until(lambda: "event=cache_write_recovered" in read_text(d.log), 10))
        # One fault, one line (and the recovery), not a line per write or per retry.
        self.assertEqual(read_text(d.log).count("event=cache_write_failed"), 1)

    def test_revocation_seen_while_locked_survives_a_restart(self):
        leaf = self.pki.leaf(self.root, "leaf", serial="5101", ocsp_urls=[self.url])
        self.resp = self.responder(self.root, port=self.port, ndays=7, restartable=True)
        d = self.staplerd(self.ca_file, extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        st, _, good = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200)
        self.assertIn(": good", response_text(good, self.tmp))
        d.wait_rows(1)
        # Leases are written before a refresh starts: hold the lock once the next one is out.
        holder = self.lock(d)
        self.revoke_at_upstream(self.resp, leaf)
        ok = wait_until(lambda: ": revoked" in response_text(d.staple(leaf.pem(), PEM)[2],
                                                            self.tmp), 20)
        self.assertTrue(ok, read_text(d.log, 3000))
        row = d.db_rows()[0]
        self.assertEqual(row["cert_status"], "good")      # not written yet
        holder.execute("ROLLBACK")
        holder.close()
        self.wait_row_status(d, "revoked")
        self.assertEqual(d.stop(), 0)
        self.resp.stop()                                  # the staple must come from the cache
        d.start()
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))

    def wait_row_status(self, d, status):
        def probe():
            try:
                return d.db_rows()[0]["cert_status"] == status
            except (sqlite3.Error, IndexError):
                return False
        self.assertTrue(wait_until(probe, 15), read_text(d.log, 3000))


class FullDisk:
    """A small tmpfs in a mount namespace of its own, kept alive by a holder process, so a
    staplerd started in it (nsenter) and restarted later finds the same database; the test
    reaches it through /proc/HOLDER/root."""

    def __init__(self, dir, size="16m"):
        self.dir = dir
        self.reader = None
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=%s tmpfs "$1" && echo ready && exec sleep 600' % size,
             "sh", dir], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            raise AssertionError("cannot mount a tmpfs")

    def path(self, *parts):
        """The path, as this process reaches it inside the namespace."""
        return os.path.join("/proc/%d/root" % self.holder.pid, self.dir.lstrip("/"), *parts)

    def query(self, database, sql):
        p = subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "sqlite3", "-readonly",
                            database, sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=10)
        return p.stdout.strip()

    def fill(self):
        # Unbuffered: a write the full disk cuts short leaves nothing for close() to flush.
        with open(self.path("filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def free(self):
        if self.reader is not None:
            self.reader.stdin.close()
            self.reader.wait(timeout=10)
            self.reader = None
        os.unlink(self.path("filler"))

    def fill_and_hold(self, d):
        """Fills the disk and keeps it full while staplerd tries to write. A reader holds a
        read transaction, so no checkpoint can truncate the WAL and give its room back;
        staplerd gives back its ballast (room for a checkpoint) at its first failed write, and
        that room is filled too. free() ends both."""
        self.reader = subprocess.Popen(
            ["nsenter", "-t", str(self.holder.pid), "-m", "sqlite3", "-readonly", d.database],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True)
        self.reader.stdin.write("BEGIN;\nSELECT count(*) FROM ocsp_response;\n")
        self.reader.stdin.flush()
        self.fill()
        if not wait_until(lambda: "event=ballast_released" in read_text(d.log), 15):
            raise AssertionError("staplerd did not give its ballast back:\n" +
                                 read_text(d.log, 3000))
        for _ in range(3):
            self.fill()
            time.sleep(0.5)

    def enter(self, d):
        """Makes the harness start d inside this mount namespace."""
        d.prefix = ["nsenter", "-t", str(self.holder.pid), "-m"]
        return d

    def stop(self):
        if self.reader is not None:
            self.reader.kill()
            self.reader.wait(timeout=10)
        self.holder.kill()
        self.holder.wait(timeout=10)


class FullDiskTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        require_mounts(self)

    def on_small_disk(self, *serials):
        """A CA with leaves of these serials behind `openssl ocsp`, and staplerd refreshing
        every second with its database on a small tmpfs (FullDisk). Returns (root, upstream
        port, leaves, responder, disk, staplerd), staplerd started (in the disk's namespace,
        also when started again)."""
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        leaves = tuple(self.pki.leaf(root, "leaf-" + s, serial=s,
                                     ocsp_urls=["http://127.0.0.1:%d/" % port]) for s in serials)
        resp = self.responder(root, port=port, ndays=7, restartable=True)
        dbdir = os.path.join(self.tmp, "db")
        os.makedirs(dbdir)
        disk = FullDisk(dbdir)
        self.addCleanup(disk.stop)
        d = self.staplerd(self.pki.bundle("ca.pem", root), start=False, extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        d.database = os.path.join(dbdir, "cache.db")
        disk.enter(d).start()
        return root, port, leaves, resp, disk, d

    def test_revocation_on_a_full_disk_lands_and_survives_a_restart(self):
        root, port, (leaf, other), resp, disk, d = self.on_small_disk("6101", "6102")
        st, _, good = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200)

        def row_status(serial):
            # SQLite resolves /proc/PID/root like any symbolic link (back into this mount
            # namespace), so the database is read from inside the namespace.
            return disk.query(d.database, "SELECT cert_status FROM ocsp_response WHERE "
                              "serial = '%s'" % serial) or None
        self.assertTrue(wait_until(lambda: row_status("6101") == "good", 10))
        disk.fill_and_hold(d)
        self.revoke_at_upstream(resp, leaf)
        ok = wait_until(lambda: ": revoked" in response_text(d.staple(leaf.pem(), PEM)[2],
                                                            self.tmp), 20)
        self.assertTrue(ok, read_text(d.log, 3000))
        # A new certificate is served too, while nothing can be written.
        st, _, body = d.staple(other.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        time.sleep(1)
        self.assertEqual(row_status("6101"), "good")
        self.assertIn("fault=disk_full", read_text(d.log))
        disk.free()
        self.assertTrue(wait_until(lambda: row_status("6101") == "revoked", 15),
                        read_text(d.log, 3000))
        self.assertTrue(wait_until(lambda: row_status("6102") == "good", 15))
        # The head-end was told: writes failing, the revocation, writes recovered, in the
        # order they happened, all in the outbox once the disk had room.
        def types():
            return disk.query(d.database, "SELECT type FROM event_outbox ORDER BY seq").split()
        self.assertTrue(wait_until(lambda: "writes_recovered" in types(), 15), types())
        t = types()
        self.assertLess(t.index("writes_failing"), t.index("writes_recovered"), t)
        self.assertIn("cert_revoked", t)
        self.assertIn("event=writes_failing", read_text(d.log))
        self.assertEqual(d.stop(), 0)
        resp.stop()                       # from here on the staples come from the cache
        d.start()
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))
        self.assertEqual(d.staple(other.pem(), PEM)[0], 200)


    def test_revocation_on_a_full_disk_survives_kill_9(self):
        """The database cannot take the revocation and the daemon is killed: the revocation
        journal (allocated in full at start) brings it back, so the restart on the still full
        disk serves `revoked`, never the older `good`, and it lands once space returns."""
        root, port, (leaf,), resp, disk, d = self.on_small_disk("6201")
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)

        def row_status():
            return disk.query(d.database, "SELECT cert_status FROM ocsp_response") or None
        self.assertTrue(wait_until(lambda: row_status() == "good", 10))
        disk.fill_and_hold(d)
        self.revoke_at_upstream(resp, leaf)
        self.assertTrue(wait_until(lambda: ": revoked" in response_text(
            d.staple(leaf.pem(), PEM)[2], self.tmp), 20), read_text(d.log, 3000))
        d.kill()
        resp.stop()
        self.assertEqual(row_status(), "good")            # the database never took it
        d.start()
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))
        self.assertIn("event=revocation_recovered", read_text(d.log))
        disk.free()
        self.assertTrue(wait_until(lambda: row_status() == "revoked", 15), read_text(d.log, 3000))
        # Its cert_revoked event was raised before the kill and lost with the write; the
        # journal's replay raised it again under the same id, and it landed with the row.
        ids = [l.split(" id=")[1].split()[0] for l in read_text(d.log).splitlines()
               if "event=cert_revoked " in l]
        self.assertGreaterEqual(len(ids), 2, read_text(d.log, 3000))
        self.assertEqual(len(set(ids)), 1, ids)
        self.assertEqual(disk.query(d.database, "SELECT id FROM event_outbox WHERE "
                                    "type = 'cert_revoked'"), ids[0])


class MaxIntervalTest(IntegrationTestCase):

    def test_century_response_is_refetched_within_the_cap(self):
        """`openssl ocsp -ndays 36500`: nextUpdate a hundred years away, so the window rule
        alone would ask again in a century; max_interval = 3s asks again within seconds."""
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        up = self.responder(root, port=port, ndays=36500)
        fwd = self.forwarder(up.port)
        leaf = self.pki.leaf(root, "leaf", serial="1001", ocsp_urls=[fwd.url])
        d = self.staplerd(self.pki.bundle("ca.pem", root), extra=(
            "[refresh]\nwindow = 7d\nmin_interval = 1s\nmax_interval = 3s\n"
            "check_interval = 1s\n"))
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        row = d.wait_rows(1)[0]
        self.assertGreater(row["next_update"] - time.time(), 99 * 365 * 86400)
        self.assertLessEqual(row["next_refresh_at"] - row["fetched_at"], 3)
        self.assertTrue(wait_until(lambda: fwd.count >= 3, 15),
                        "refetched %d times in 15 s\n%s" % (fwd.count, read_text(d.log, 3000)))
        self.assertIn("event=refreshed", read_text(d.log))

    def test_default_cap_is_one_day(self):
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        up = self.responder(root, port=port, ndays=36500)
        leaf = self.pki.leaf(root, "leaf", serial="1002", ocsp_urls=[up.url])
        d = self.staplerd(self.pki.bundle("ca.pem", root))
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        row = d.wait_rows(1)[0]
        gap = row["next_refresh_at"] - row["fetched_at"]
        self.assertLessEqual(gap, 86400)
        self.assertGreaterEqual(gap, 86400 - 86400 // 8)


class SlowForUnknownSerials(LoopbackHTTPServer):
    """An upstream in front of `openssl ocsp` that answers the certificates it knows at once
    and holds requests for any other serial (made-up ones, as an attacker sends) for `stall`
    seconds, then closes: the /ocsp misses that nobody will wait for."""

    def __init__(self, upstream_port, known_serials, stall=30):
        import http.server
        import threading
        from cryptography.x509 import ocsp as x509_ocsp
        self.lock = threading.Lock()
        self.seen = {"known": 0, "unknown": 0}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def _answer(self, body):
                try:
                    serial = "%X" % x509_ocsp.load_der_ocsp_request(body).serial_number
                except Exception:
                    serial = None
                known = serial in known_serials
                with outer.lock:
                    outer.seen["known" if known else "unknown"] += 1
                if not known:
                    time.sleep(stall)
                    self.close_connection = True
                    return
                from harness import http_request
                st, rh, data = http_request(upstream_port, "POST", "/", body=body, headers={
                    "Content-Type": "application/ocsp-request", "Connection": "close"})
                self.send_response(st)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                import base64
                import urllib.parse
                b64 = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
                self._answer(base64.b64decode(b64 + "=" * (-len(b64) % 4)))

            def do_POST(self):
                self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        super().__init__(Handler)
        self.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def count(self, kind):
        with self.lock:
            return self.seen[kind]


class LogBoundTest(IntegrationTestCase):

    def test_refusals_cannot_flood_the_log(self):
        """500 junk bodies and 500 certificates of an unknown CA, on kept-alive connections:
        each is refused (400, 403), but the log gets at most a few refusal lines per 10 s, and
        the next line written says how many were left out."""
        import http.client
        root = self.pki.root("root")
        stranger = self.pki.root("stranger")
        alien = self.pki.leaf(stranger, "alien", serial="9001", ocsp_urls=["http://127.0.0.1:1/"])
        d = self.staplerd(self.pki.bundle("ca.pem", root))
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        for i in range(1000):
            body = b"junk %d" % i if i % 2 else alien.pem()
            conn.request("POST", "/v1/staple", body=body, headers={"Content-Type": PEM})
            r = conn.getresponse()
            r.read()
            self.assertIn(r.status, (400, 403))
        conn.close()
        log = read_text(d.log)
        self.assertLessEqual(log.count("event=submission_refused"), 3 * 10, log[-2000:])
        time.sleep(10.5)
        self.assertEqual(d.staple(b"junk again", PEM)[0], 400)
        self.assertRegex(read_text(d.log), r"event=submission_refused status=400 "
                                           r"suppressed=[1-9][0-9]* ")


class AbandonedWorkTest(IntegrationTestCase):

    def test_abandoned_misses_are_cancelled(self):
        """3,000 /ocsp misses for made-up serials whose clients hang up: their fetches are
        dropped (fetch queue empty, upstream asked far fewer than 3,000 times), and a real
        certificate's miss behind them is answered within a few seconds."""
        import socket
        from test_service_ocsp import cert_id, ocsp_request
        root = self.pki.root("root")
        self.pki.responder(root)
        up = self.responder(root, port=free_port())
        known = self.pki.leaf(root, "known", serial="1001", ocsp_urls=["http://127.0.0.1:1/"])
        real = self.pki.leaf(root, "real", serial="1002", ocsp_urls=["http://127.0.0.1:1/"])
        slow = SlowForUnknownSerials(up.port, {"1001", "1002"})
        self.addCleanup(slow.stop)
        known = self.pki.leaf(root, "known2", serial="1001", ocsp_urls=[slow.url])
        real = self.pki.leaf(root, "real2", serial="1002", ocsp_urls=[slow.url])
        # The rate limit per client is another issue's (test_front_door_limits.py): here it is off.
        d = self.staplerd(self.pki.bundle("ca.pem", root), timeout="30s",
                          extra="[limits]\nfetches_per_client = 0\n")
        # A first staple teaches the daemon the issuer and its responder URL for /ocsp.
        st, _, body = d.staple(known.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        socks = []
        for i in range(3000):
            req = ocsp_request([cert_id(root.der(), "%X" % (0x100000 + i))])
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request"
                      b"\r\nContent-Length: %d\r\n\r\n" % len(req) + req)
            socks.append(s)
            if len(socks) >= 200:
                for s in socks:
                    s.close()
                socks = []
        for s in socks:
            s.close()
        t0 = time.monotonic()
        st, _, body = d.staple(real.pem(), PEM, timeout=20)
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 200, body[:300])
        self.assertLess(elapsed, 5, "real miss waited %.1f s" % elapsed)

        def drained():
            st, _, b = d.request("GET", "/healthz")
            doc = json.loads(b)
            return doc["fetch_queue"] == 0 and doc["fetching"] == 0 and doc[
                "waiting_clients"] == 0
        self.assertTrue(wait_until(drained, 10), d.request("GET", "/healthz")[2])
        self.assertLess(slow.count("unknown"), 1000)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
