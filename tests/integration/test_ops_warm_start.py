"""A restart is warm and ready at once (issue 19, docs/contract.md §8.5, §10): the listener answers
before the cache is loaded, an entry whose row is not loaded yet is answered from SQLite with
the upstream down (no fetch while a valid row exists), /healthz says "loading" then "ready",
and a revocation the journal holds wins over the good row the load reaches later (§8.11).

The load is slowed with real configuration keys ([cache] load_batch and load_max_cpu), so that
it visibly takes longer than the first answers on any machine.
"""

import base64
import json
import os
import sqlite3
import sys
import unittest
import urllib.parse

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, read_text, response_text,
                     setUpModule, wait_until)

# Rows copied in: enough that the slowed load lasts seconds (50 rows per slice, 1 % of the
# loop: about 100 slices and a pause of at least 99 times each slice's work).
COPIES = 5000
SLOW_LOAD = "[cache]\nload_batch = 50\nload_max_cpu = 1\n"


def der(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + body


def ocsp_request(name_hash, key_hash, serial):
    """An OCSPRequest for one SHA-1 CertID, no extensions (as bench/rows.py builds it)."""
    alg = der(0x30, der(0x06, bytes.fromhex("2b0e03021a")) + b"\x05\x00")
    magnitude = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    certid = der(0x30, alg + der(0x04, name_hash) + der(0x04, key_hash) + der(0x02, magnitude))
    return der(0x30, der(0x30, der(0x30, der(0x30, certid))))


def copy_rows(database, n, first_serial):
    """n copies of the database's first row under serials first_serial.. (hex), not due."""
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(ocsp_response)")
                if r[1] not in ("id", "serial", "next_refresh_at")]
        conn.execute(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?) "
            "INSERT INTO ocsp_response (serial, next_refresh_at, %s) "
            "SELECT printf('%%X', ? + i), 4102444800, %s FROM seq, "
            "(SELECT * FROM ocsp_response ORDER BY id LIMIT 1)"
            % (", ".join(cols), ", ".join(cols)), (n - 1, first_serial))
    finally:
        conn.close()


def move_last(database, serial):
    """Gives the row of serial the largest rowid: the load reaches it last."""
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("UPDATE ocsp_response SET id = (SELECT max(id) FROM ocsp_response) + 1 "
                     "WHERE serial = ?", (serial,))
    finally:
        conn.close()


class WarmStartTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.ca_file = self.pki.bundle("ca.pem", self.root)

    def health(self, d):
        st, _, body = d.request("GET", "/healthz")
        self.assertEqual(st, 200, body[:300])
        return json.loads(body)

    def wait_ready(self, d):
        self.assertTrue(wait_until(lambda: self.health(d)["phase"] == "ready", 120),
                        read_text(d.log, 3000))

    def test_answers_from_the_database_before_the_load_ends(self):
        leaf = self.pki.leaf(self.root, "leaf", serial="7400", ocsp_urls=[self.url])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file)
        st, _, stored = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, stored[:300])
        d.wait_rows(1)
        self.assertEqual(d.stop(), 0)
        resp.stop()                      # every answer below comes from the cache
        copy_rows(d.database, COPIES, 0x100000)
        move_last(d.database, "7400")
        row = d.db_rows("WHERE serial = ?", ("100000",))[0]
        name_hash = bytes.fromhex(row["issuer_name_hash"])
        key_hash = bytes.fromhex(row["issuer_key_hash"])

        d.extra = SLOW_LOAD
        d.start()
        h = self.health(d)
        self.assertEqual(h["phase"], "loading", h)
        self.assertGreaterEqual(h["rows_to_load"], COPIES + 1)
        # The submission's row comes last in the load: read by its key, served as stored.
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertEqual(body, stored)
        # An /ocsp GET for a copy near the end of the table, by the lightweight reader.
        req = ocsp_request(name_hash, key_hash, 0x100000 + COPIES - 2)
        path = "/ocsp/" + urllib.parse.quote(base64.b64encode(req).decode(), safe="")
        st, hdrs, body = d.request("GET", path)
        self.assertEqual(st, 200, body[:300])
        self.assertEqual(body, row["response_der"])
        h = self.health(d)
        self.assertEqual(h["phase"], "loading", h)
        self.assertLess(h["rows_loaded"], h["rows_to_load"])
        self.assertGreaterEqual(h["read_by_key"], 2)
        self.wait_ready(d)
        h = self.health(d)
        self.assertEqual(h["staples"], COPIES + 1)
        self.assertEqual(h["rows_loaded"], COPIES + 1)
        log = read_text(d.log)
        self.assertIn("event=cache_loaded rows=%d" % (COPIES + 1), log)
        # Nothing was fetched: the upstream was down, and nothing failed either.
        self.assertNotIn("event=refresh_failed", log)
        self.assertNotIn("event=fetch_failed", log)
        self.assertEqual(d.staple(leaf.pem(), PEM)[2], stored)

    def test_revocation_in_the_journal_wins_over_the_row_loaded_later(self):
        leaf = self.pki.leaf(self.root, "leaf", serial="7500", ocsp_urls=[self.url])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        d.wait_rows(1)
        resp.stop()
        self.root.revoke(leaf)
        # The revocation reaches memory and the journal, not the row: the lock is held
        # through the stop.
        holder = sqlite3.connect(d.database, timeout=1, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        resp = self.responder(self.root, port=self.port, ndays=7)
        self.assertTrue(wait_until(lambda: ": revoked" in response_text(
            d.staple(leaf.pem(), PEM)[2], self.tmp), 20), read_text(d.log, 3000))
        self.assertEqual(d.stop(), 0)
        holder.execute("ROLLBACK")
        resp.stop()
        self.assertEqual(d.db_rows()[0]["cert_status"], "good")
        copy_rows(d.database, COPIES, 0x100000)
        move_last(d.database, "7500")

        d.extra = SLOW_LOAD
        d.start()
        self.assertEqual(self.health(d)["phase"], "loading")
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))
        self.assertEqual(self.health(d)["phase"], "loading")
        # The load reaches the good row last, and keeps the revocation held.
        self.wait_ready(d)
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertIn(": revoked", response_text(body, self.tmp))
        self.assertTrue(wait_until(lambda: d.db_rows("WHERE serial = '7500'")[0]["cert_status"]
                                   == "revoked", 10))
        self.assertIn("event=revocation_recovered", read_text(d.log))


if __name__ == "__main__":
    unittest.main()
