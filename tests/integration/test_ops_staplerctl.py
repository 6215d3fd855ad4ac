"""staplerctl against the real staplerd, its database and `openssl ocsp`.

Inspection (list, show, stats, export) reads the database; actions (import, refresh, evict) go
through the daemon's admin socket; verify checks staples offline.
Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import PEM, IntegrationTestCase, free_port, ocsp_url, run, staplerd_binary



def staplerctl_binary():
    return os.environ.get("STAPLERCTL") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "staplerctl")


def setUpModule():
    for b in (staplerd_binary(), staplerctl_binary()):
        if not os.access(b, os.X_OK):
            raise AssertionError("binary not found at %s (set STAPLERD / STAPLERCTL)" % b)


def colons(hexstr):
    """"1A2B" -> "1a:2b": how people paste serials and hashes."""
    h = hexstr.lower()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


class StaplerctlTest(IntegrationTestCase):

    def ctl(self, *args, conf=None, timeout=60, binary=False):
        args = [staplerctl_binary(), "-c", conf or self.d.conf] + list(args)
        if binary:
            import subprocess
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout)
            return p
        return run(args, check=False, timeout=timeout)

    def ctl_json(self, *args, expect=0):
        p = self.ctl("--json", *args)
        self.assertEqual(p.returncode, expect, p.stdout + p.stderr)
        return json.loads(p.stdout)

    def ca_with_responder(self, name="root", upstream="forwarder"):
        """A root CA with a delegated responder running; leaves point at a counting forwarder
        in front of it (or straight at it)."""
        ca = self.pki.root(name)
        self.pki.responder(ca)
        ca.port = free_port()
        ca.fwd = self.forwarder(ca.port) if upstream == "forwarder" else None
        ca.url = ca.fwd.url if ca.fwd else ocsp_url(ca.port)
        return ca

    def start(self, *cas):
        for ca in cas:
            self.responder(ca, port=ca.port)
        self.d = self.staplerd(self.pki.bundle("ca-bundle.pem", *cas))
        return self.d

    def submit(self, leaf):
        st, h, body = self.d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        return body

    def row(self, leaf):
        rows = self.d.wait_rows(1, "WHERE serial = ? AND issuer_key_hash = ?",
                                (leaf.serial, leaf.issuer.key_hash()))
        self.assertEqual(len(rows), 1)
        return rows[0]

    # ----------------------------------------------------------------------------------------

    def test_list_show_stats(self):
        ca = self.ca_with_responder()
        good = self.pki.leaf(ca, "meter-good", serial="A001", ocsp_urls=[ca.url])
        bad = self.pki.leaf(ca, "meter-revoked", serial="A002", ocsp_urls=[ca.url], revoked=True)
        self.start(ca)
        self.submit(good)
        self.submit(bad)
        self.d.wait_rows(2)

        p = self.ctl("list")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("SERIAL"), p.stdout)
        self.assertIn("NEXT UPDATE", lines[0])
        self.assertEqual(len(lines), 3, p.stdout)
        text = "\n".join(lines[1:])
        for s in ("A001", "A002", "meter-good", "meter-revoked", "good", "revoked"):
            self.assertIn(s, text)
        self.assertRegex(text, r"in [67]d")       # next update, relative (ndays 7)

        doc = self.ctl_json("list")
        self.assertIsInstance(doc["now"], int)
        by_serial = {e["serial"]: e for e in doc["entries"]}
        self.assertEqual(set(by_serial), {"A001", "A002"})
        e = by_serial["A001"]
        for k in ("serial", "issuer", "subject", "issuer_subject", "status", "this_update",
                  "next_update", "fetched_at", "next_refresh_at", "cert_not_after", "failures",
                  "last_error", "ocsp_url"):
            self.assertIn(k, e)
        row = self.row(good)
        self.assertEqual(e["issuer"], ca.key_hash())
        self.assertEqual(e["status"], "good")
        self.assertEqual(e["next_update"], row["next_update"])
        self.assertEqual(e["fetched_at"], row["fetched_at"])
        self.assertEqual(e["failures"], 0)
        self.assertIsNone(e["last_error"])
        self.assertIn("meter-good", e["subject"])
        self.assertEqual(by_serial["A002"]["status"], "revoked")
        # Sorted by next refresh.
        times = [x["next_refresh_at"] for x in doc["entries"]]
        self.assertEqual(times, sorted(times))

        only = self.ctl_json("list", "--status", "revoked")
        self.assertEqual([x["serial"] for x in only["entries"]], ["A002"])
        self.assertEqual(self.ctl_json("list", "--expired")["entries"], [])
        self.assertEqual(len(self.ctl_json("list", "--issuer", colons(ca.key_hash()))["entries"]), 2)
        p = self.ctl("list", "--status", "bogus")
        self.assertEqual(p.returncode, 2)

        # show: any case, colons; the decoded response is there.
        p = self.ctl("show", colons("A001"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(ca.key_hash(), p.stdout)
        self.assertIn("meter-good", p.stdout)
        self.assertIn("Cert Status: good", p.stdout)
        self.assertIn("OCSP Response Status: successful", p.stdout)
        p = self.ctl("show", "a002")
        self.assertEqual(p.returncode, 1, "a revoked certificate is bad news")
        self.assertIn("Cert Status: revoked", p.stdout)
        doc = self.ctl_json("show", "A001")
        self.assertEqual(doc["serial"], "A001")
        self.assertEqual(doc["response_text"].count("Cert Status: good"), 1)
        self.assertEqual(doc["ocsp_urls"], [ca.url])
        import base64
        self.assertEqual(base64.b64decode(doc["response"]), bytes(row["response_der"]))
        p = self.ctl("show", "BEEF")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no cached entry", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)

        st = self.ctl_json("stats")
        self.assertEqual(st["total"], 2)
        self.assertEqual(st["status"], {"good": 1, "revoked": 1, "unknown": 0})
        self.assertEqual(st["expired"], 0)
        self.assertEqual(st["failing"], 0)
        self.assertEqual(st["issuers"], 1)
        self.assertEqual(len(st["upstreams"]), 1)
        up = st["upstreams"][0]
        self.assertEqual(up["host"], "127.0.0.1:%d" % ca.fwd.port)
        self.assertEqual((up["entries"], up["ok"], up["failing"]), (2, 2, 0))
        p = self.ctl("stats")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"revoked\s+1")

    def test_same_serial_two_cas_show_asks_which(self):
        cas = [self.ca_with_responder("ca-a"), self.ca_with_responder("ca-b")]
        leaves = [self.pki.leaf(ca, "leaf-" + ca.name, serial="4242", ocsp_urls=[ca.url])
                  for ca in cas]
        self.start(*cas)
        for leaf in leaves:
            self.submit(leaf)
        self.d.wait_rows(2)

        p = self.ctl("show", "4242")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        for ca in cas:
            self.assertIn(ca.key_hash(), p.stderr)
        for ca, leaf in zip(cas, leaves):
            p = self.ctl("show", "4242", "--issuer", ca.key_hash().lower())
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("leaf-" + ca.name, p.stdout)
        doc = self.ctl_json("list")
        self.assertEqual(sorted(e["issuer"] for e in doc["entries"]),
                         sorted(ca.key_hash() for ca in cas))
        # Actions refuse the ambiguity the same way.
        p = self.ctl("evict", "4242")
        self.assertEqual(p.returncode, 2)
        self.assertIn(cas[0].key_hash(), p.stderr)
        self.assertEqual(len(self.d.db_rows()), 2)

    def test_export_writes_served_bytes(self):
        ca = self.ca_with_responder()
        leaf = self.pki.leaf(ca, "meter", serial="E0E1", ocsp_urls=[ca.url])
        self.start(ca)
        served = self.submit(leaf)
        row = self.row(leaf)
        out = os.path.join(self.tmp, "out", "staple.der")
        os.makedirs(os.path.dirname(out))
        p = self.ctl("export", "e0:e1", "-o", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            data = f.read()
        self.assertEqual(data, served)
        self.assertEqual(data, bytes(row["response_der"]))
        self.assertEqual(os.listdir(os.path.dirname(out)), ["staple.der"], "no temp file left")
        p = self.ctl("export", "E0E1", "-o", "-", binary=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, served)
        doc = self.ctl_json("export", "E0E1", "-o", out)
        self.assertEqual(doc["bytes"], len(served))
        self.assertEqual(self.ctl("export", "E0E1").returncode, 2)
        self.assertEqual(self.ctl("export", "FFFF", "-o", out).returncode, 1)

    def test_import_directory_reports_each_failure(self):
        ca = self.ca_with_responder()
        stranger = self.pki.root("stranger")
        d = os.path.join(self.tmp, "import")
        os.makedirs(d)
        good = [self.pki.leaf(ca, "meter-%d" % i, serial="B00%d" % i, ocsp_urls=[ca.url])
                for i in range(1, 4)]
        with open(os.path.join(d, "a-good1.pem"), "wb") as f:
            f.write(good[0].pem())
        with open(os.path.join(d, "b-good2.der"), "wb") as f:
            f.write(good[1].der())
        with open(os.path.join(d, "c-chain.pem"), "wb") as f:
            f.write(good[2].pem() + ca.pem())
        other = self.pki.leaf(stranger, "foreign", serial="B0FF", ocsp_urls=[ca.url], index=False)
        with open(os.path.join(d, "d-untrusted.pem"), "wb") as f:
            f.write(other.pem())
        with open(os.path.join(d, "e-junk.pem"), "wb") as f:
            f.write(b"this is not a certificate\n")
        self.start(ca)

        doc = self.ctl_json("import", d, expect=1)
        self.assertEqual((doc["submitted"], doc["ok"], doc["failed"]), (5, 3, 2))
        res = {os.path.basename(r["file"]): r for r in doc["results"]}
        for name, leaf in (("a-good1.pem", good[0]), ("b-good2.der", good[1]),
                           ("c-chain.pem", good[2])):
            self.assertTrue(res[name]["ok"], res[name])
            self.assertEqual(res[name]["serial"], leaf.serial)
            self.assertEqual(res[name]["issuer"], ca.key_hash())
            self.assertEqual(res[name]["status"], "good")
        self.assertEqual(res["d-untrusted.pem"]["outcome"], "untrusted")
        self.assertEqual(res["d-untrusted.pem"]["http"], 403)
        self.assertEqual(res["e-junk.pem"]["outcome"], "bad_input")
        self.assertEqual(res["e-junk.pem"]["http"], 400)
        self.assertTrue(res["e-junk.pem"]["error"])
        self.assertEqual(sorted(r["serial"] for r in self.d.db_rows()),
                         sorted(l.serial for l in good))
        # Human summary (not a terminal: no progress bar), every failure with its reason.
        p = self.ctl("import", d)
        self.assertEqual(p.returncode, 1)
        self.assertIn("imported 3 of 5", p.stdout)
        self.assertIn("d-untrusted.pem: untrusted (403)", p.stdout)
        self.assertIn("e-junk.pem: bad_input (400)", p.stdout)
        self.assertNotIn("\r", p.stderr)
        # All good: exit 0.
        p = self.ctl("import", os.path.join(d, "a-good1.pem"), os.path.join(d, "b-good2.der"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_refresh_fetches_again(self):
        ca = self.ca_with_responder()
        leaf = self.pki.leaf(ca, "meter", serial="C001", ocsp_urls=[ca.url])
        self.start(ca)
        self.submit(leaf)
        before = self.row(leaf)
        self.assertEqual(ca.fwd.count, 1)
        time.sleep(1.1)
        p = self.ctl("refresh", "c0:01")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("C001", p.stdout)
        self.assertEqual(ca.fwd.count, 2)
        after = self.row(leaf)
        self.assertGreater(after["fetched_at"], before["fetched_at"])
        doc = self.ctl_json("refresh", "C001", "--issuer", ca.key_hash())
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["status"], "good")
        self.assertEqual(ca.fwd.count, 3)

        doc = self.ctl_json("refresh", "--all")
        self.assertEqual(doc["marked"], 1)
        self.assertLessEqual(self.row(leaf)["next_refresh_at"], int(time.time()))
        doc = self.ctl_json("refresh", "--due")
        self.assertEqual((doc["refreshed"], doc["failed"]), (1, 0))
        self.assertEqual(ca.fwd.count, 4)
        p = self.ctl("refresh", "DEAD")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no cached entry", p.stderr)
        self.assertEqual(self.ctl("refresh", "--all", "C001").returncode, 2)

    def test_evict_stops_serving_from_memory(self):
        ca = self.ca_with_responder()
        leaf = self.pki.leaf(ca, "meter", serial="D001", ocsp_urls=[ca.url])
        self.start(ca)
        self.submit(leaf)
        self.submit(leaf)
        self.assertEqual(ca.fwd.count, 1, "the second submission is a cache hit")
        p = self.ctl("evict", "d001")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.d.db_rows(), [])
        self.submit(leaf)
        self.assertEqual(ca.fwd.count, 2, "evicted: the next submission fetches again")
        self.row(leaf)
        self.assertEqual(self.ctl_json("evict", "D001")["serial"], "D001")
        p = self.ctl("evict", "D001")
        self.assertEqual(p.returncode, 1)

    def test_verify_good_revoked_tampered_stale(self):
        ca = self.ca_with_responder(upstream="direct")
        good = self.pki.leaf(ca, "meter-good", serial="F001", ocsp_urls=[ca.url])
        bad = self.pki.leaf(ca, "meter-revoked", serial="F002", ocsp_urls=[ca.url], revoked=True)
        other = self.pki.root("other")
        self.start(ca)
        g = self.save("good.der", self.submit(good))
        r = self.save("revoked.der", self.submit(bad))

        def verify(cert, staple, *extra):
            return self.ctl("verify", "--cert", cert.cert, "--staple", staple, *extra)

        p = verify(good, g, "--ca", ca.cert)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("good", p.stdout)
        self.assertIn("next update", p.stdout)
        p = verify(good, g, "--chain", ca.cert, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual((doc["verdict"], doc["status"]), ("good", "good"))
        self.assertEqual(doc["next_update"], self.row(good)["next_update"])
        p = verify(bad, r, "--ca", ca.cert)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("revoked", p.stdout)
        # The good staple is not a staple for the revoked certificate.
        self.assertEqual(verify(bad, g, "--ca", ca.cert).returncode, 2)
        # A flipped byte in the signature (the end of the DER).
        with open(g, "rb") as f:
            data = bytearray(f.read())
        data[-5] ^= 0x01
        t = self.save("tampered.der", bytes(data))
        p = verify(good, t, "--ca", ca.cert)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("invalid", p.stdout + p.stderr)
        # Not chaining to --ca.
        p = verify(good, g, "--ca", other.cert)
        self.assertEqual(p.returncode, 2)
        self.assertIn("does not chain", p.stderr)
        # Stale for a relying party that wants at most 1 s of age.
        time.sleep(2)
        p = verify(good, g, "--ca", ca.cert, "--max-age", "1")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("stale", p.stdout)
        self.assertEqual(verify(good, g, "--ca", ca.cert, "--max-age", "1h").returncode, 0)
        self.assertEqual(self.ctl("verify", "--cert", good.cert).returncode, 2)

    def test_daemon_down_is_a_clear_error(self):
        ca = self.ca_with_responder()
        leaf = self.pki.leaf(ca, "meter", serial="9001", ocsp_urls=[ca.url])
        self.start(ca)
        self.submit(leaf)
        self.row(leaf)
        self.assertTrue(os.path.exists(self.d.admin_socket))
        self.assertEqual(self.d.stop(), 0)
        self.assertFalse(os.path.exists(self.d.admin_socket), "socket removed at exit")
        for args in (("refresh", "9001"), ("evict", "9001"), ("import", leaf.cert)):
            p = self.ctl(*args)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn("cannot reach staplerd", p.stderr)
            self.assertIn("is the daemon running", p.stderr)
        # Inspection needs no daemon.
        p = self.ctl("list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("9001", p.stdout)

    def test_admin_socket_permissions(self):
        ca = self.ca_with_responder()
        self.start(ca)
        mode = os.stat(self.d.admin_socket).st_mode & 0o777
        self.assertEqual(mode, 0o660)

    def test_idle_admin_connections_are_closed(self):
        """Idle clients cannot hold the 16 admin connection slots (ADMIN_IDLE_TIMEOUT 20 s)."""
        import socket
        ca = self.ca_with_responder()
        self.start(ca)
        idle = []
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.d.admin_socket)
            idle.append(s)
        try:
            # All slots are held: a 17th client is turned away.
            extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            extra.settimeout(5)
            extra.connect(self.d.admin_socket)
            self.assertIn(b"too many admin connections", extra.recv(200))
            extra.close()
            # After the idle timeout the daemon has closed them...
            for s in idle:
                s.settimeout(30)
                self.assertEqual(s.recv(10), b"", "idle connection not closed")
            # ...and actions work again.
            p = self.ctl("stats")
            self.assertEqual(p.returncode, 0, p.stderr)
            p = self.ctl("refresh", "--due")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            for s in idle:
                s.close()


if __name__ == "__main__":
    unittest.main()
