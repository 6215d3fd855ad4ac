"""POST /v1/staples: one staple per certificate of the chain (leaf and intermediates), each
fetched from its own AIA responder and verified against its own issuer.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import base64
import json
import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, ocsp_url, PEM, setUpModule, wait_until)




class StaplesTest(IntegrationTestCase):

    def chain(self, inter_url=None, leaf_urls=None, start_root=True, start_inter=True):
        ns = type("Chain", (), {})()
        ns.root = self.pki.root("root")
        self.pki.responder(ns.root)
        ns.root_port, ns.inter_port = free_port(), free_port()
        ns.inter = self.pki.intermediate(ns.root, ocsp_urls=[inter_url or ocsp_url(ns.root_port)])
        self.pki.responder(ns.inter)
        urls = [ocsp_url(ns.inter_port)] if leaf_urls is None else leaf_urls
        ns.leaf = self.pki.leaf(ns.inter, "leaf", serial="9001", ocsp_urls=urls)
        if start_root:
            self.responder(ns.root, port=ns.root_port, ndays=30)
        if start_inter:
            self.responder(ns.inter, port=ns.inter_port, ndays=30)
        ns.ca_file = self.pki.bundle("ca-bundle.pem", ns.root)
        return ns

    def staples(self, d, body):
        return d.request("POST", "/v1/staples", body=body, headers={"Content-Type": PEM})

    def test_leaf_and_intermediate_staples(self):
        ns = self.chain()
        d = self.staplerd(ns.ca_file)
        st, h, body = self.staples(d, ns.leaf.pem() + ns.inter.pem())
        self.assertEqual(st, 200, body[:500])
        self.assertTrue(h.get("content-type", "").startswith("application/json"))
        doc = json.loads(body)
        self.assertEqual(len(doc["staples"]), 2, doc)
        leaf_st, inter_st = doc["staples"]
        self.assertEqual(leaf_st["serial"], ns.leaf.serial)
        self.assertEqual(leaf_st["issuer"], ns.inter.key_hash())
        self.assertEqual(inter_st["serial"], ns.inter.serial)
        self.assertEqual(inter_st["issuer"], ns.root.key_hash())
        now = time.time()
        for s in doc["staples"]:
            self.assertEqual(s["status"], "good")
            self.assertIsInstance(s["this_update"], int)
            self.assertLessEqual(s["this_update"], now + 5)
            self.assertGreater(s["next_update"], now)
        leaf_der = base64.b64decode(leaf_st["response"])
        inter_der = base64.b64decode(inter_st["response"])
        self.assertStapleVerifies(leaf_der, ns.inter, ns.root.cert, ns.leaf, "good")
        self.assertStapleVerifies(inter_der, ns.root, ns.root.cert, ns.inter, "good")
        # Both live in the one cache, each under its own issuer.
        rows = d.wait_rows(2)
        by_serial = {r["serial"]: r for r in rows}
        self.assertEqual(by_serial[ns.inter.serial]["issuer_key_hash"], ns.root.key_hash())
        self.assertEqual(bytes(by_serial[ns.inter.serial]["response_der"]), inter_der)
        self.assertEqual(by_serial[ns.leaf.serial]["issuer_key_hash"], ns.inter.key_hash())
        # /v1/staple of the same chain is the cached leaf staple.
        st, _, single = d.staple(ns.leaf.pem() + ns.inter.pem(), PEM)
        self.assertEqual(st, 200)
        self.assertEqual(single, leaf_der)

    def test_revoked_intermediate_is_a_staple_too(self):
        ns = self.chain(start_root=False)
        ns.root.revoke(ns.inter)
        self.responder(ns.root, port=ns.root_port, ndays=30)
        d = self.staplerd(ns.ca_file)
        st, _, body = self.staples(d, ns.leaf.pem() + ns.inter.pem())
        self.assertEqual(st, 200, body[:500])
        doc = json.loads(body)
        self.assertEqual([s["status"] for s in doc["staples"]], ["good", "revoked"])

    def test_untrusted_chain_is_403_without_contact(self):
        counter = self.counter()
        ns = self.chain(inter_url=counter.url, leaf_urls=[counter.url], start_root=False,
                        start_inter=False)
        other = self.pki.root("other")
        d = self.staplerd(self.pki.bundle("other-bundle.pem", other))
        st, h, body = self.staples(d, ns.leaf.pem() + ns.inter.pem())
        self.assertJsonError(st, h, body, 403)
        time.sleep(0.3)
        self.assertEqual(counter.count, 0)

    def test_chain_without_urls_is_422(self):
        root = self.pki.root("root")
        inter = self.pki.intermediate(root, "intermediate")
        leaf = self.pki.leaf(inter, "leaf", serial="9101", ocsp_urls=())
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, body = self.staples(d, leaf.pem() + inter.pem())
        self.assertJsonError(st, h, body, 422)

    def test_intermediate_upstream_down_is_an_answer_in_part(self):
        """The intermediate's responder is down: 200 with the leaf's staple and, for the
        intermediate, its serial, issuer and an error (no response), as /v1/staple answers
        200 for the same leaf (issue 17)."""
        ns = self.chain(start_root=False)
        d = self.staplerd(ns.ca_file)
        for attempt in ("fetched", "cached"):
            st, h, body = self.staples(d, ns.leaf.pem() + ns.inter.pem())
            self.assertEqual(st, 200, body[:500])
            self.assertTrue(h.get("content-type", "").startswith("application/json"))
            leaf_st, inter_st = json.loads(body)["staples"]
            self.assertEqual((leaf_st["serial"], leaf_st["status"]), (ns.leaf.serial, "good"))
            self.assertStapleVerifies(base64.b64decode(leaf_st["response"]), ns.inter,
                                      ns.root.cert, ns.leaf, "good")
            self.assertEqual(inter_st["serial"], ns.inter.serial, attempt)
            self.assertEqual(inter_st["issuer"], ns.root.key_hash())
            self.assertIn(ns.inter.serial, inter_st["error"])
            self.assertNotIn("response", inter_st)
            self.assertNotIn("status", inter_st)
        self.assertEqual(d.staple(ns.leaf.pem() + ns.inter.pem(), PEM)[0], 200)
        # The leaf staple is cached as usual.
        self.assertEqual(len(d.wait_rows(1, "WHERE serial = ?", (ns.leaf.serial,))), 1)

    def test_no_staple_at_all_is_502(self):
        ns = self.chain(start_root=False, start_inter=False)
        d = self.staplerd(ns.ca_file)
        st, h, body = self.staples(d, ns.leaf.pem() + ns.inter.pem())
        self.assertJsonError(st, h, body, 502)
        self.assertIn(ns.leaf.serial, json.loads(body)["error"])   # the first, in chain order

    def test_client_gone_while_fetching(self):
        """A client that leaves while its fetch is under way is noticed at once: it no longer
        counts as waiting, and the fetch nobody else waits for is dropped (its upstream
        connection closed), long before the upstream timeout would have ended it."""
        # An upstream that accepts and never answers: a fetch runs until it is dropped.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        self.addCleanup(silent.close)
        url = ocsp_url(silent.getsockname()[1])
        ns = self.chain(inter_url=url, leaf_urls=[url], start_root=False, start_inter=False)
        d = self.staplerd(ns.ca_file, timeout="60s")
        body = ns.leaf.pem() + ns.inter.pem()

        def waiting():
            st, _, doc = d.request("GET", "/healthz")
            self.assertEqual(st, 200)
            return json.loads(doc)["waiting_clients"]

        # The silent upstream's connections, accepted as they come: a fetch that reached it.
        conns = []
        silent.settimeout(0.05)

        def accept_all():
            while True:
                try:
                    conns.append(silent.accept()[0])
                except socket.timeout:
                    return len(conns)

        for path in ("/v1/staples", "/v1/staple"):
            before = len(conns)
            c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            c.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % (path.encode(), len(body)) + body)
            self.assertTrue(wait_until(lambda: waiting() == 1, 10), path + ": never waited")
            # The client leaves only once its fetch is under way at the upstream.
            self.assertTrue(wait_until(lambda: accept_all() > before, 10),
                            path + ": no fetch reached the upstream")
            c.close()
            self.assertTrue(wait_until(lambda: waiting() == 0, 5),
                            path + ": the client that left still counts as waiting")
        accept_all()
        # Every fetch the two clients started was dropped: each of its connections ends (EOF)
        # instead of waiting out the 60 s timeout.
        for conn in conns:
            conn.settimeout(5)
            while True:
                chunk = conn.recv(4096)      # a timeout here fails the test: not dropped
                if not chunk:
                    break
            conn.close()
        self.assertEqual(d.request("GET", "/healthz")[0], 200)

    def test_junk_and_method(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, body = self.staples(d, b"junk")
        self.assertJsonError(st, h, body, 400)
        st, h, body = d.request("GET", "/v1/staples")
        self.assertJsonError(st, h, body, 405)


if __name__ == "__main__":
    unittest.main()
