"""Events pushed to the operator (docs/contract.md §8.13, issue 20): a revocation raises
cert_revoked, persisted in the outbox with the row, delivered to webhooks as signed CloudEvents
1.0, at least once, in order, retried while the receiver fails, across a kill -9 between the
change and the delivery, never raised again after a restart; `staplerctl events [--follow]`
prints them. Run inside tests/integration/netns-run (CTest does).
"""

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, read_text, setUpModule, stop_process,
                     wait_until)

FAST_REFRESH = "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"
SECRET = "s3cret-for-tests"


def staplerctl():
    return os.environ.get("STAPLERCTL") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "staplerctl")


class EventsTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.port = free_port()
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def events_conf(self, hook, extra=""):
        return (FAST_REFRESH + "[events]\nwebhooks = %s\nsecret = %s\nretry_max = 2s\n"
                % (hook.url, SECRET) + extra)

    def outbox(self, d):
        conn = sqlite3.connect("file:%s?mode=ro" % d.database, uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM event_outbox ORDER BY seq")]
        finally:
            conn.close()

    def staple_good(self, d, leaf):
        st, _, body = d.staple(leaf.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        return body

    def revoke(self, resp, leaf):
        """The CA revokes leaf; its responder rereads the index on restart."""
        resp.stop()
        self.root.revoke(leaf)
        return self.responder(self.root, port=self.port, ndays=7)

    def wait_events(self, hook, type_, n=1, timeout=20):
        ok = wait_until(lambda: len([e for e in hook.accepted()
                                     if e["type"] == "io.staplerd." + type_]) >= n, timeout)
        got = [e for e in hook.accepted() if e["type"] == "io.staplerd." + type_]
        self.assertTrue(ok, "webhook got %r" % hook.all_posts())
        return got

    # ----------------------------------------------------------------------------------------
    def test_revocation_is_pushed_signed_as_cloudevent(self):
        """A staple held good turns revoked at a refresh: one cert_revoked event, in the outbox
        and the log, POSTed to the webhook as a structured CloudEvent with a valid HMAC."""
        hook = self.webhook()
        leaf = self.pki.leaf(self.root, "meter-1", serial="E001", ocsp_urls=[
            "http://127.0.0.1:%d/" % self.port])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=self.events_conf(hook))
        self.staple_good(d, leaf)
        self.revoke(resp, leaf)
        ev = self.wait_events(hook, "cert_revoked")[0]
        self.assertEqual(ev["specversion"], "1.0")
        self.assertEqual(ev["source"], "urn:staplerd")
        self.assertEqual(ev["datacontenttype"], "application/json")
        self.assertEqual(ev["subject"], "%s/%s" % (self.root.key_hash(), leaf.serial))
        self.assertEqual(ev["data"]["serial"], leaf.serial)
        self.assertEqual(ev["data"]["was"], "good")
        self.assertEqual(ev["data"]["status"], "revoked")
        self.assertRegex(ev["id"], "^[0-9a-f]{32}$")
        self.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # The exact bytes POSTed carry the signature and the CloudEvents media type.
        posts = [(h, b) for h, b, st in hook.all_posts() if json.loads(b)["id"] == ev["id"]]
        headers, body = posts[0]
        self.assertEqual(headers["content-type"], "application/cloudevents+json")
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        self.assertEqual(headers["x-staplerd-signature"], want)
        # The outbox row: one, marked delivered; the log line of the event.
        rows = [r for r in self.outbox(d) if r["id"] == ev["id"]]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["type"], "cert_revoked")
        self.assertEqual(rows[0]["revocation"], 1)
        self.assertTrue(wait_until(lambda: [r for r in self.outbox(d) if r["id"] == ev["id"]][0]
                                   ["delivered_at"] is not None, 5))
        self.assertIn("event=cert_revoked id=%s" % ev["id"], read_text(d.log))
        # Refreshes go on answering revoked: no second event.
        time.sleep(3)
        self.assertEqual(len(self.wait_events(hook, "cert_revoked")), 1)

    def test_retries_while_the_receiver_fails_then_in_order(self):
        """While the receiver answers 500 the same event is sent again with backoff (same id);
        once it answers 200 every event arrives, in outbox order, each id once."""
        hook = self.webhook()
        hook.status = 500
        leaves = [self.pki.leaf(self.root, "meter-%d" % i, serial="E10%d" % i, ocsp_urls=[
            "http://127.0.0.1:%d/" % self.port]) for i in range(3)]
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=self.events_conf(hook))
        for leaf in leaves:
            self.staple_good(d, leaf)
        resp.stop()
        for leaf in leaves:
            self.root.revoke(leaf)
        self.responder(self.root, port=self.port, ndays=7)
        self.assertTrue(wait_until(lambda: len(self.outbox(d)) >= 3, 20), self.outbox(d))
        self.assertTrue(wait_until(lambda: len(hook.all_posts()) >= 3, 20))
        first = [json.loads(b)["id"] for h, b, st in hook.all_posts()]
        self.assertEqual(len(set(first)), 1, "retries must repeat the first event: %r" % first)
        self.assertIn("event=event_delivery_failed", read_text(d.log))
        hook.status = 200
        got = self.wait_events(hook, "cert_revoked", n=3)
        self.assertEqual(len({e["id"] for e in got}), 3)
        seqs = [int(e["sequence"]) for e in hook.accepted()]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual([e["id"] for e in got], [r["id"] for r in self.outbox(d)
                                                  if r["type"] == "cert_revoked"])
        self.assertEqual({e["data"]["serial"] for e in got}, {l.serial for l in leaves})

    def test_kill9_between_change_and_delivery(self):
        """The revocation and its event are written together; a kill -9 before the receiver
        took it loses nothing: the next start delivers it (same id), and a later restart does
        not raise or deliver it again."""
        hook = self.webhook()
        hook.status = 503
        leaf = self.pki.leaf(self.root, "meter-k", serial="E201", ocsp_urls=[
            "http://127.0.0.1:%d/" % self.port])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=self.events_conf(hook))
        self.staple_good(d, leaf)
        self.revoke(resp, leaf)
        self.assertTrue(wait_until(lambda: any(r["type"] == "cert_revoked"
                                               for r in self.outbox(d)), 20))
        row = d.db_rows("WHERE serial = ?", (leaf.serial,))[0]
        self.assertEqual(row["cert_status"], "revoked")
        d.kill()
        self.assertEqual(hook.accepted(), [])
        hook.status = 200
        d.start()
        got = self.wait_events(hook, "cert_revoked")
        self.assertEqual(len(got), 1)
        d.stop()
        d.start()
        time.sleep(3)
        self.assertEqual(len(hook.accepted()), 1, hook.accepted())
        self.assertEqual(len([r for r in self.outbox(d) if r["type"] == "cert_revoked"]), 1)

    def test_staplerctl_events_follow(self):
        """`staplerctl events --follow` prints an event as it happens; `events --json` prints
        the CloudEvent; --since skips what was seen."""
        leaf = self.pki.leaf(self.root, "meter-f", serial="E301", ocsp_urls=[
            "http://127.0.0.1:%d/" % self.port])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=FAST_REFRESH)
        self.staple_good(d, leaf)
        out = os.path.join(self.tmp, "follow.out")
        with open(out, "wb") as f:
            follow = subprocess.Popen([staplerctl(), "-c", d.conf, "events", "--follow"],
                                      stdout=f, stderr=subprocess.STDOUT)
        self.addCleanup(stop_process, follow)
        time.sleep(1)
        self.assertIsNone(follow.poll(), read_text(out))
        self.assertNotIn("cert_revoked", read_text(out))
        self.revoke(resp, leaf)
        self.assertTrue(wait_until(lambda: "cert_revoked" in read_text(out), 20), read_text(out))
        line = [l for l in read_text(out).splitlines() if "cert_revoked" in l][0]
        self.assertIn(leaf.serial, line)
        p = subprocess.run([staplerctl(), "-c", d.conf, "events", "--json"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        evs = [json.loads(l) for l in p.stdout.decode().splitlines()]
        rev = [e for e in evs if e["type"] == "io.staplerd.cert_revoked"]
        self.assertEqual(len(rev), 1, evs)
        self.assertEqual(rev[0]["data"]["serial"], leaf.serial)
        p = subprocess.run([staplerctl(), "-c", d.conf, "events", "--json", "--since",
                            rev[0]["sequence"].lstrip("0") or "0"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(rev[0]["id"], p.stdout.decode())

    def test_upstream_failing_and_recovered(self):
        """An upstream that fails for [health] upstream_failing raises upstream_failing, and
        upstream_recovered once it answers again; the staple held good meanwhile, inside
        the danger window, raises staple_danger once."""
        hook = self.webhook()
        leaf = self.pki.leaf(self.root, "meter-u", serial="E401", ocsp_urls=[
            "http://127.0.0.1:%d/" % self.port])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra=self.events_conf(
            hook, "[health]\nupstream_failing = 1s\ndanger_window = 30d\n"))
        self.staple_good(d, leaf)
        resp.stop()
        ev = self.wait_events(hook, "upstream_failing", timeout=30)[0]
        self.assertEqual(ev["subject"], "127.0.0.1:%d" % self.port)
        self.assertEqual(ev["data"]["upstream"], "127.0.0.1:%d" % self.port)
        danger = self.wait_events(hook, "staple_danger", timeout=30)
        self.assertEqual(danger[0]["data"]["serial"], leaf.serial)
        self.responder(self.root, port=self.port, ndays=7)
        self.wait_events(hook, "upstream_recovered", timeout=60)
        types = [e["type"] for e in hook.accepted()]
        self.assertLess(types.index("io.staplerd.upstream_failing"),
                        types.index("io.staplerd.upstream_recovered"))
        self.assertEqual(types.count("io.staplerd.staple_danger"), 1, types)


if __name__ == "__main__":
    unittest.main()
