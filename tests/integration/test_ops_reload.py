"""SIGHUP of the real staplerd (docs/contract.md §3): a reload swaps configuration and trust anchors
without losing the cache, and a bad file changes nothing.

Run inside tests/integration/netns-run (CTest does).
"""

import os
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, ocsp_url, PEM, read_text, setUpModule,
                     wait_until)
from test_service_ocsp import UNAUTHORIZED, cert_id, ocsp_request




class ReloadTest(IntegrationTestCase):

    def ca_with_leaf(self, name, serial):
        ca = self.pki.root(name)
        self.pki.responder(ca)
        port = free_port()
        leaf = self.pki.leaf(ca, "leaf-" + name, serial=serial, ocsp_urls=[ocsp_url(port)])
        self.responder(ca, port=port)
        return ca, leaf

    def hup(self, d, event):
        """Sends SIGHUP and waits for the log line of its outcome."""
        before = read_text(d.log).count("event=" + event)
        os.kill(d.proc.pid, signal.SIGHUP)
        ok = wait_until(lambda: read_text(d.log).count("event=" + event) > before, 10)
        self.assertTrue(ok, "no %s after SIGHUP:\n%s" % (event, read_text(d.log, 3000)))
        self.assertIsNone(d.proc.poll(), "staplerd exited on SIGHUP")

    def test_reload_adds_a_trust_anchor_and_keeps_the_cache(self):
        ca_a, leaf_a = self.ca_with_leaf("ca-a", "5001")
        ca_b, leaf_b = self.ca_with_leaf("ca-b", "5002")
        bundle = self.pki.bundle("ca-bundle.pem", ca_a)
        d = self.staplerd(bundle)
        st, _, staple_a = d.staple(leaf_a.pem(), PEM)
        self.assertEqual(st, 200)
        st, h, b = d.staple(leaf_b.pem(), PEM)
        self.assertJsonError(st, h, b, 403)

        self.pki.bundle("ca-bundle.pem", ca_a, ca_b)      # the same path, new contents
        self.hup(d, "reloaded")
        st, _, staple_b = d.staple(leaf_b.pem(), PEM)
        self.assertEqual(st, 200, staple_b[:300])
        # The cache survived: the first staple is still the same bytes.
        st, _, again = d.staple(leaf_a.pem(), PEM)
        self.assertEqual((st, again), (200, staple_a))

        # Removing the anchor again: its certificates are refused, nothing is fetched.
        self.pki.bundle("ca-bundle.pem", ca_a)
        self.hup(d, "reloaded")
        st, h, b = d.staple(leaf_b.pem(), PEM)
        self.assertJsonError(st, h, b, 403)

    def test_bad_config_on_reload_changes_nothing(self):
        ca_a, leaf_a = self.ca_with_leaf("ca-a", "5101")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", ca_a))
        st, _, staple_a = d.staple(leaf_a.pem(), PEM)
        self.assertEqual(st, 200)
        good = d.config_text()
        for bad in (good + "[server]\nbogus = 1\n",
                    good.replace("max_request = 64k", "max_request = lots"),
                    good.replace(d.ca_file, os.path.join(self.tmp, "missing.pem"))):
            with open(d.conf, "w") as f:
                f.write(bad)
            self.hup(d, "reload_failed")
            st, _, again = d.staple(leaf_a.pem(), PEM)
            self.assertEqual((st, again), (200, staple_a))
        self.assertIn("bogus", read_text(d.log))
        # The old limits are still in force: 64k, not a value from a rejected file.
        st, h, b = d.staple(b"A" * (70 * 1024), PEM)
        self.assertJsonError(st, h, b, 413)
        # A good file again reloads.
        with open(d.conf, "w") as f:
            f.write(good)
        self.hup(d, "reloaded")

    def test_restart_only_keys_are_named_and_kept(self):
        """A reload that changes listen keeps serving on the running address and says which
        keys wait for a restart; the reloadable keys of the same file apply."""
        ca_a, leaf_a = self.ca_with_leaf("ca-a", "5151")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", ca_a))
        st, _, staple_a = d.staple(leaf_a.pem(), PEM)
        self.assertEqual(st, 200)
        good = d.config_text()
        old_listen = "listen = 127.0.0.1:%d" % d.port
        self.assertIn(old_listen, good)
        self.assertIn("max_request = 64k", good)
        with open(d.conf, "w") as f:
            f.write(good.replace(old_listen, "listen = 127.0.0.1:%d" % free_port())
                    .replace("max_request = 64k", "max_request = 2k"))
        self.hup(d, "reloaded")
        log = read_text(d.log)
        self.assertIn('event=reload_partial keys="server.listen"', log)
        self.assertNotIn("server.admin_socket", log)
        st, _, again = d.staple(leaf_a.pem(), PEM)        # the running address still answers
        self.assertEqual((st, again), (200, staple_a))
        st, h, b = d.staple(b"A" * 3000, PEM)                # the new max_request applies
        self.assertJsonError(st, h, b, 413)

    def test_removed_anchor_is_not_served_forwarded_or_refreshed(self):
        """After the operator removes a CA from the bundle, nothing of it reaches an upstream:
        not an /ocsp miss, not a refresh; and /ocsp no longer answers for it. Also after a
        restart with the new bundle."""
        root = self.pki.root("root")
        inter = self.pki.intermediate(root, "intermediate")
        self.pki.responder(inter)
        port = free_port()
        proxy = self.fault_proxy(port)
        a, b, c = [self.pki.leaf(inter, name, serial=serial, ocsp_urls=[proxy.url])
                   for name, serial in (("a", "5201"), ("b", "5202"), ("c", "5203"))]
        self.responder(inter, port=port, ndays=30)
        other = self.pki.root("other")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root),
                          extra="[refresh]\nwindow = 60d\nmin_interval = 1s\ncheck_interval = 1s\n")

        def ocsp(leaf):
            return d.request("POST", "/ocsp", body=ocsp_request([cert_id(inter.der(), leaf.serial)]),
                             headers={"Content-Type": "application/ocsp-request"})

        st, _, body = d.staple(a.pem() + inter.pem(), PEM)
        self.assertEqual(st, 200)
        st, _, body = ocsp(b)           # a miss for a learned issuer is forwarded
        self.assertEqual(st, 200)
        self.assertNotEqual(body, UNAUTHORIZED)
        self.assertTrue(wait_until(lambda: proxy.count >= 4, 5),    # refreshes run every second
                        "the refreshes the test stops by the reload never ran")

        self.pki.bundle("ca-bundle.pem", other)
        self.hup(d, "reloaded")
        self.assertIn("event=issuers_untrusted", read_text(d.log))
        time.sleep(0.5)                 # a fetch started before the reload has arrived by now
        n0 = proxy.count
        for leaf in (a, b, c):          # cached, cached through /ocsp, never seen
            st, h, body = ocsp(leaf)
            self.assertEqual((st, body), (200, UNAUTHORIZED), leaf.name)
        time.sleep(3)
        self.assertEqual(proxy.count, n0, "an upstream of the removed CA was contacted")
        rows = d.db_rows("WHERE serial = ?", (a.serial,))
        self.assertIn("no longer chains to the trust anchors", rows[0]["last_error"] or "")

        # A restart with the new bundle keeps it that way.
        self.assertEqual(d.stop(), 0)
        d.start(new_port=True)
        st, _, body = ocsp(a)
        self.assertEqual((st, body), (200, UNAUTHORIZED))
        time.sleep(2)
        self.assertEqual(proxy.count, n0)


if __name__ == "__main__":
    unittest.main()
