"""What an operator watches (issue 12 items 2 and 3): /metrics in the Prometheus text format
(checked by `promtool check metrics`) with counters that move with the requests and survive a
reload, and /healthz turning degraded, with reasons, when staples near expiry cannot be
refreshed, an upstream keeps failing, the refresh falls behind what its policy asks, or the
database refuses writes.

Run inside tests/integration/netns-run (CTest does).
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, read_text, run,  # noqa: E402
                     setUpModule, wait_until)
from test_ops_staplerctl import staplerctl_binary  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, "not a sample line: %r" % line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def sample(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


class ObserveTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.pki.responder(self.root)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.ca_file = self.pki.bundle("ca.pem", self.root)

    def metrics(self, d):
        st, h, body = d.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"), h)
        p = subprocess.run(["promtool", "check", "metrics"], input=body, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + body.decode()[:2000])
        return parse_metrics(body.decode())

    def health(self, d):
        st, _, body = d.request("GET", "/healthz")
        return st, json.loads(body)

    def test_metrics_are_valid_move_with_requests_and_survive_reload(self):
        leaf = self.pki.leaf(self.root, "leaf", serial="7001", ocsp_urls=[self.url])
        self.responder(self.root, port=self.port)
        d = self.staplerd(self.ca_file)
        m0 = self.metrics(d)
        self.assertEqual(sample(m0, "staplerd_http_requests_total", route="/v1/staple",
                                code="200"), 0)
        for _ in range(5):
            self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        self.assertEqual(d.request("GET", "/nowhere")[0], 404)
        self.assertEqual(d.staple(b"junk", PEM)[0], 400)
        m1 = self.metrics(d)
        self.assertEqual(sample(m1, "staplerd_http_requests_total", route="/v1/staple",
                                code="200"), 5)
        self.assertEqual(sample(m1, "staplerd_http_requests_total", route="/v1/staple",
                                code="400"), 1)
        self.assertEqual(sample(m1, "staplerd_http_requests_total", route="other", code="404"), 1)
        self.assertEqual(sample(m1, "staplerd_cache_entries", status="good"), 1)
        upstream = "127.0.0.1:%d" % self.port
        self.assertEqual(sample(m1, "staplerd_upstream_fetches_total", upstream=upstream,
                                outcome="ok"), 1)
        self.assertEqual(sample(m1, "staplerd_upstream_fetch_duration_seconds_count",
                                upstream=upstream), 1)
        # The pass over the staples is cached for a few seconds.
        self.assertTrue(wait_until(lambda: sample(self.metrics(d),
                                                  "staplerd_staple_age_seconds_count") == 1, 10))
        self.assertGreater(sample(m1, "staplerd_process_start_time_seconds"), time.time() - 60)
        # No per-certificate labels: nothing names the serial.
        self.assertNotIn("7001", "".join(str(k) for k in m1))
        # A reload keeps every counter.
        before = read_text(d.log).count("event=reloaded")
        os.kill(d.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: read_text(d.log).count("event=reloaded") > before, 10))
        m2 = self.metrics(d)
        self.assertEqual(sample(m2, "staplerd_http_requests_total", route="/v1/staple",
                                code="200"), 5)
        self.assertEqual(sample(m2, "staplerd_upstream_fetches_total", upstream=upstream,
                                outcome="ok"), 1)
        self.assertEqual(sample(m2, "staplerd_process_start_time_seconds"),
                         sample(m1, "staplerd_process_start_time_seconds"))
        # HEAD has the headers and no body.
        st, h, body = d.request("HEAD", "/metrics")
        self.assertEqual((st, body), (200, b""))

    def test_revocation_is_counted_and_logged(self):
        leaf = self.pki.leaf(self.root, "leaf", serial="7101", ocsp_urls=[self.url])
        resp = self.responder(self.root, port=self.port)
        d = self.staplerd(self.ca_file, extra=(
            "[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n"))
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        resp.stop()
        self.root.revoke(leaf)
        self.port2 = free_port()
        self.responder(self.root, port=self.port)
        self.assertTrue(wait_until(lambda: sample(self.metrics(d),
                                                  "staplerd_revocations_seen_total") == 1, 20))
        log = read_text(d.log)
        self.assertRegex(log, r"level=warn event=revocation_seen serial=7101 issuer=[0-9A-F]+ ")

    def faked(self, d, offset):
        """Makes the harness start d under libfaketime (offset like '+156h'): the library
        itself, not the faketime wrapper, which would take the signals. An ASan build wants
        its runtime first in the library list; preloading libfaketime is fine for what is
        tested here."""
        asan = os.environ.get("ASAN_OPTIONS")
        d.env = {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                 "FAKETIME": offset,
                 "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}

    def test_healthz_degraded_when_upstream_down_and_staples_near_expiry(self):
        leaf = self.pki.leaf(self.root, "leaf", serial="7201", ocsp_urls=[self.url])
        resp = self.responder(self.root, port=self.port, ndays=7)
        d = self.staplerd(self.ca_file, extra="[health]\nupstream_failing = 1s\n")
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        st, h = self.health(d)
        self.assertEqual((st, h["status"], h["reasons"]), (200, "ok", []))
        self.assertEqual(d.stop(), 0)
        resp.stop()
        # Six and a half days later: 12 hours left, inside the 1-day danger window, and the
        # upstream is down, so the refresh (due at once) fails.
        self.faked(d, "+156h")
        d.extra = ("[health]\nupstream_failing = 1s\n"
                   "[refresh]\ncheck_interval = 1s\nmin_interval = 1s\n")
        d.start()
        self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)   # still served: 12 h left

        def degraded():
            st, h = self.health(d)
            reasons = {r["reason"] for r in h["reasons"]}
            return (st, h) if {"staples_near_expiry", "upstream_failing"} <= reasons else None
        got = wait_until(degraded, 20)
        self.assertTrue(got, (self.health(d), read_text(d.log, 3000)))
        st, h = got
        self.assertEqual((st, h["status"], h["near_expiry"]), (200, "degraded", 1))
        up = [r for r in h["reasons"] if r["reason"] == "upstream_failing"][0]
        self.assertIn("127.0.0.1:%d" % self.port, up["upstreams"])
        m = self.metrics(d)
        self.assertEqual(sample(m, "staplerd_staples_near_expiry"), 1)
        self.assertEqual(sample(m, "staplerd_staples_expiring_24h"), 1)
        self.assertGreaterEqual(sample(m, "staplerd_upstreams_in_backoff"), 1)

    def test_healthz_degraded_when_refresh_falls_behind(self):
        """A policy that asks more than the upstream answers: six entries to refresh every
        second from an upstream that takes a second per answer, one at a time. The most
        overdue entry falls behind, /metrics shows demand, rate and lag, and /healthz turns
        degraded with refresh_behind."""
        resp = self.responder(self.root, port=self.port, ndays=7)
        fwd = self.forwarder(resp.port)
        leaves = [self.pki.leaf(self.root, "l%d" % i, serial="74%02d" % i, ocsp_urls=[fwd.url])
                  for i in range(6)]
        d = self.staplerd(self.ca_file, extra="[upstream]\nmax_per_host = 1\n"
                          "[refresh]\ncheck_interval = 1s\nmin_interval = 1s\n"
                          "[health]\nrefresh_behind = 3s\n")
        for leaf in leaves:
            self.assertEqual(d.staple(leaf.pem(), PEM)[0], 200)
        st, h = self.health(d)
        self.assertNotIn("refresh_behind", {r["reason"] for r in h["reasons"]})
        fwd.delay = 1.0

        def behind():
            st, h = self.health(d)
            r = [x for x in h["reasons"] if x["reason"] == "refresh_behind"]
            return (st, h, r[0]) if r else None
        got = wait_until(behind, 30)
        self.assertTrue(got, (self.health(d), read_text(d.log, 3000)))
        st, h, r = got
        self.assertEqual((st, h["status"]), (200, "degraded"))
        self.assertGreaterEqual(r["behind_seconds"], 3)
        # The pass over the staples behind the demand gauge is at most 5 s old.
        m = wait_until(lambda: (lambda m: m if sample(m, "staplerd_refresh_demand_next_hour")
                                == 6 else None)(self.metrics(d)), 10)
        self.assertTrue(m)
        self.assertGreaterEqual(sample(m, "staplerd_refresh_behind_seconds"), 3)
        self.assertGreaterEqual(sample(m, "staplerd_refreshes_total", outcome="ok"), 1)
        # Due work left behind a busy upstream is admitted when a slot frees, not a tick later.
        self.assertGreaterEqual(sample(m, "staplerd_refresh_ticks_early_total"), 1)
        self.assertEqual(sample(m, "staplerd_upstream_concurrency_limit",
                                upstream="127.0.0.1:%d" % fwd.port), 1)
        # staplerctl stats: demand and lag from the database, the daemon's pace and limits.
        p = run([staplerctl_binary(), "-c", d.conf, "stats", "--json"], check=False, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        s = json.loads(p.stdout)
        self.assertEqual(s["due_next_hour"], 6)
        self.assertIsNotNone(s["daemon"])
        self.assertGreaterEqual(s["daemon"]["refreshes_ok"], 1)
        self.assertEqual([(u["host"], u["limit"]) for u in s["daemon"]["upstreams"]],
                         [("127.0.0.1:%d" % fwd.port, 1)])
        p = run([staplerctl_binary(), "-c", d.conf, "stats"], check=False, timeout=60)
        self.assertIn("127.0.0.1:%d" % fwd.port, p.stdout)
        self.assertIn("due within 1h", p.stdout)

    def test_degraded_code_and_database_not_writable(self):
        a = self.pki.leaf(self.root, "a", serial="7301", ocsp_urls=[self.url])
        b = self.pki.leaf(self.root, "b", serial="7302", ocsp_urls=[self.url])
        self.responder(self.root, port=self.port)
        d = self.staplerd(self.ca_file, extra="[health]\ndegraded_code = 503\n")
        self.assertEqual(d.staple(a.pem(), PEM)[0], 200)
        d.wait_rows(1)
        self.assertEqual(self.health(d)[0], 200)
        holder = sqlite3.connect(d.database, timeout=1, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            self.assertEqual(d.staple(b.pem(), PEM)[0], 200)
            st, h = self.health(d)
            self.assertEqual((st, h["status"]), (503, "degraded"))
            self.assertEqual([r["reason"] for r in h["reasons"]], ["database_not_writable"])
            self.assertEqual(h["pending_writes"], 1)
            self.assertEqual(sample(self.metrics(d), "staplerd_cache_write_failing"), 1)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        self.assertTrue(wait_until(lambda: self.health(d)[0] == 200, 10), self.health(d))

    def test_alert_rules_in_the_docs_are_valid(self):
        """The example Prometheus alert rules of docs/operations.md pass promtool."""
        text = open(os.path.join(ROOT, "examples", "prometheus", "staplerd-alerts.yml")).read()
        path = os.path.join(self.tmp, "rules.yml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run(["promtool", "check", "rules", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        ops = open(os.path.join(ROOT, "docs", "operations.md")).read()
        self.assertIn(text.strip(), ops)


if __name__ == "__main__":
    unittest.main()
