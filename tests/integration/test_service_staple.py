"""POST /v1/staple and the core HTTP API of the real staplerd, against `openssl ocsp`.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import email.utils
import json
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (ConnectionCounter, free_port, IntegrationTestCase, ocsp_url, PEM, raw_http,
                     setUpModule, verify_staple)

DER = "application/pkix-cert"
OCSP_RESPONSE = "application/ocsp-response"



class StapleTest(IntegrationTestCase):

    def chain(self, serial="1001", bundle="root", ndays=7, urls=None, revoked=False,
              upstream="direct", port=None):
        """root -> intermediate (with a delegated responder) -> leaf, the responder running.
        bundle: "root" (the bundle holds the root) or "both" (root and intermediate).
        upstream: "direct" (AIA points at openssl ocsp) or "forwarder" (at a counting proxy
        in front of it). Returns a namespace with root, inter, leaf, resp, fwd, ca_file."""
        ns = type("Chain", (), {})()
        ns.root = self.pki.root("root")
        ns.inter = self.pki.intermediate(ns.root, "intermediate")
        self.pki.responder(ns.inter)
        port = port or free_port()
        ns.fwd = None
        if urls is None:
            urls = [ocsp_url(port)]
        if upstream == "forwarder":
            ns.fwd = self.forwarder(port)
            urls = [ns.fwd.url]
        ns.leaf = self.pki.leaf(ns.inter, "leaf", serial=serial, ocsp_urls=urls, revoked=revoked)
        # The index is complete before the responder starts: it does not notice later edits
        # made within the same second.
        ns.resp = self.responder(ns.inter, port=port, ndays=ndays)
        if bundle == "root":
            ns.ca_file = self.pki.bundle("ca-bundle.pem", ns.root)
        else:
            ns.ca_file = self.pki.bundle("ca-bundle.pem", ns.root, ns.inter)
        return ns

    def pem_body(self, ns):
        return ns.leaf.pem() + ns.inter.pem()

    def assertStaple(self, status, headers, body):
        self.assertEqual(status, 200, body[:500])
        self.assertEqual(headers.get("content-type", "").split(";")[0].strip(), OCSP_RESPONSE)
        self.assertGreater(len(body), 100)

    # ----------------------------------------------------------------------------------------
    # The staple itself

    def test_pem_chain_returns_verifiable_staple(self):
        ns = self.chain(bundle="root")
        d = self.staplerd(ns.ca_file)
        st, h, body = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, body)
        self.assertStapleVerifies(body, ns.inter, ns.root.cert, ns.leaf, "good")

    def test_der_leaf_with_intermediate_in_bundle(self):
        ns = self.chain(bundle="both")
        d = self.staplerd(ns.ca_file)
        st, h, body = d.staple(ns.leaf.der(), DER)
        self.assertStaple(st, h, body)
        self.assertStapleVerifies(body, ns.inter, ns.root.cert, ns.leaf, "good")

    def test_same_serial_from_two_cas(self):
        cas = []
        for name in ("ca-a", "ca-b"):
            root = self.pki.root(name)
            self.pki.responder(root)
            port = free_port()
            leaf = self.pki.leaf(root, "leaf-" + name, serial="4242", ocsp_urls=[ocsp_url(port)])
            self.responder(root, port=port)
            cas.append((root, leaf))
        (ra, la), (rb, lb) = cas
        self.assertEqual(la.serial, lb.serial)
        self.assertNotEqual(ra.key_hash(), rb.key_hash())
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", ra, rb))

        staples = []
        for root, leaf in cas:
            st, h, body = d.staple(leaf.pem(), PEM)
            self.assertStaple(st, h, body)
            self.assertStapleVerifies(body, root, root.cert, leaf, "good")
            staples.append(body)
        self.assertNotEqual(staples[0], staples[1])
        # Each staple answers for its own CA's certificate only.
        out = self.verify_other_ca(staples[0], rb, lb)
        self.assertNotIn(": good", out)

        rows = d.wait_rows(2, "WHERE serial = ?", ("4242",))
        self.assertEqual(len(rows), 2, rows)
        self.assertEqual({r["issuer_key_hash"] for r in rows}, {ra.key_hash(), rb.key_hash()})
        by_hash = {r["issuer_key_hash"]: bytes(r["response_der"]) for r in rows}
        self.assertEqual(by_hash[ra.key_hash()], staples[0])
        self.assertEqual(by_hash[rb.key_hash()], staples[1])

    def verify_other_ca(self, der, root, leaf):
        return verify_staple(der, root, root.cert, leaf, workdir=self.tmp)

    def test_revoked_certificate_is_stapled(self):
        ns = self.chain(revoked=True)
        d = self.staplerd(ns.ca_file)
        st, h, body = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, body)
        self.assertStapleVerifies(body, ns.inter, ns.root.cert, ns.leaf, "revoked")
        rows = d.wait_rows(1, "WHERE serial = ?", (ns.leaf.serial,))
        self.assertEqual(rows[0]["cert_status"], "revoked")
        st, _, b = d.request("GET", "/healthz")
        doc = json.loads(b.decode())
        self.assertEqual((doc["staples"], doc["good"], doc["revoked"], doc["unknown"]), (1, 0, 1, 0))

    def test_first_aia_url_dead_second_answers(self):
        dead = free_port()          # nothing listens there
        port = free_port()
        while port == dead:
            port = free_port()
        ns = self.chain(urls=[ocsp_url(dead), ocsp_url(port)], port=port)
        d = self.staplerd(ns.ca_file)
        st, h, body = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, body)
        self.assertStapleVerifies(body, ns.inter, ns.root.cert, ns.leaf, "good")
        rows = d.wait_rows(1, "WHERE serial = ?", (ns.leaf.serial,))
        self.assertEqual(rows[0]["ocsp_url"], ocsp_url(port))

    # ----------------------------------------------------------------------------------------
    # Refusals

    def test_untrusted_issuer_is_refused_without_upstream_contact(self):
        trusted = self.pki.root("trusted")
        rogue = self.pki.root("rogue")
        counter = self.counter()
        leaf = self.pki.leaf(rogue, "rogue-leaf", serial="5151", ocsp_urls=[counter.url])
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", trusted))
        # With and without the rogue root in the submitted chain.
        for body in (leaf.pem() + rogue.pem(), leaf.pem()):
            st, h, b = d.staple(body, PEM)
            self.assertJsonError(st, h, b, 403)
        st, h, b = d.staple(leaf.der(), DER)
        self.assertJsonError(st, h, b, 403)
        time.sleep(0.5)
        self.assertEqual(counter.count, 0, "staplerd contacted the untrusted cert's AIA URL")
        self.assertNoRow(d, leaf.serial)

    def test_certificate_without_aia_is_422(self):
        root = self.pki.root("root")
        leaf = self.pki.leaf(root, "no-aia", serial="6161", ocsp_urls=())
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.staple(leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 422)
        self.assertNoRow(d, leaf.serial)

    def test_issuer_with_trusted_name_but_other_key_is_403(self):
        trusted = self.pki.root("root")
        impostor = self.pki.root("root")       # same subject name, different key
        self.assertEqual(trusted.subject, impostor.subject)
        counter = self.counter()
        leaf = self.pki.leaf(impostor, "impostor-leaf", serial="5252", ocsp_urls=[counter.url])
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", trusted))
        for body in (leaf.pem(), leaf.pem() + impostor.pem()):
            st, h, b = d.staple(body, PEM)
            self.assertJsonError(st, h, b, 403)
        time.sleep(0.5)
        self.assertEqual(counter.count, 0, "staplerd contacted the impostor's AIA URL")
        self.assertNoRow(d, leaf.serial)

    # ----------------------------------------------------------------------------------------
    # Upstream failures: nothing valid to serve

    def test_all_upstreams_down_is_502(self):
        dead = [free_port(), free_port()]
        root = self.pki.root("root")
        leaf = self.pki.leaf(root, "leaf", serial="7001", ocsp_urls=[ocsp_url(p) for p in dead])
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.staple(leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 502)
        self.assertNoRow(d, leaf.serial)
        self.assertStillHealthy(d)

    def test_corrupt_signature_is_not_served_or_cached(self):
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        leaf = self.pki.leaf(root, "leaf", serial="7002", ocsp_urls=[ocsp_url(port)])
        self.responder(root, port=port, extra_args=["-badsig"])
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.staple(leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 502)
        self.assertNoRow(d, leaf.serial)

    def test_response_from_unauthorised_signer_is_not_served_or_cached(self):
        root = self.pki.root("root")
        other = self.pki.root("other")
        # An OCSPSigning certificate, but certified by another CA than the leaf's issuer.
        stranger = self.pki.responder(other, "stranger-ocsp")
        port = free_port()
        leaf = self.pki.leaf(root, "leaf", serial="7003", ocsp_urls=[ocsp_url(port)])
        self.responder(root, port=port, signer=stranger)
        # Both CAs are trusted: the signer chains to an anchor, yet it may not speak for root.
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root, other))
        st, h, b = d.staple(leaf.pem(), PEM)
        self.assertJsonError(st, h, b, 502)
        self.assertNoRow(d, leaf.serial)

    def assertNoRow(self, d, serial):
        if not os.path.exists(d.database):
            return
        try:
            rows = d.db_rows("WHERE serial = ?", (serial,))
        except Exception:       # no table yet: nothing stored either
            return
        self.assertEqual(rows, [])

    def assertStillHealthy(self, d):
        st, _, _ = d.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertIsNone(d.proc.poll(), "staplerd exited")

    def test_junk_body_is_400(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.staple(b"this is not a certificate\n" * 20, PEM)
        self.assertJsonError(st, h, b, 400)
        self.assertStillHealthy(d)

    def test_junk_der_is_400(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.staple(b"\x30\x82\x01\x00" + os.urandom(64), DER)
        self.assertJsonError(st, h, b, 400)
        self.assertStillHealthy(d)

    def test_empty_body_is_400(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.staple(b"", PEM)
        self.assertJsonError(st, h, b, 400)
        st, h, b = d.staple(b"", DER)
        self.assertJsonError(st, h, b, 400)
        self.assertStillHealthy(d)

    def test_truncated_pem_is_400(self):
        ns = self.chain()
        d = self.staplerd(ns.ca_file)
        pem = ns.leaf.pem()
        st, h, b = d.staple(pem[:len(pem) // 2], PEM)
        self.assertJsonError(st, h, b, 400)
        self.assertStillHealthy(d)
        self.assertNoRow(d, ns.leaf.serial)

    def test_oversized_body_is_413(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root), max_request="64k")
        body = b"A" * (200 * 1024)
        req = (b"POST /v1/staple HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + PEM.encode()
               + b"\r\nContent-Length: " + str(len(body)).encode()
               + b"\r\nConnection: close\r\n\r\n" + body)
        st, h, b = raw_http(d.port, req)
        self.assertJsonError(st, h, b, 413)
        self.assertStillHealthy(d)

    # ----------------------------------------------------------------------------------------
    # The cache row and the HTTP caching headers

    def test_served_bytes_equal_cached_row(self):
        ns = self.chain(serial="0A1B2C")
        d = self.staplerd(ns.ca_file)
        t0 = int(time.time())
        st, h, body = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, body)
        rows = d.wait_rows(1)
        self.assertEqual(len(rows), 1, rows)
        row = rows[0]
        self.assertEqual(ns.leaf.serial, "0A1B2C")
        self.assertEqual(row["serial"], ns.leaf.serial)
        self.assertRegex(row["issuer_key_hash"], r"^[0-9A-F]{40}$")
        self.assertEqual(row["issuer_key_hash"], ns.inter.key_hash())
        self.assertEqual(row["cert_status"], "good")
        self.assertLess(row["this_update"], row["next_update"])
        # openssl ocsp -ndays 7
        self.assertAlmostEqual(row["next_update"] - row["this_update"], 7 * 86400, delta=120)
        self.assertLessEqual(t0 - 5, row["fetched_at"])
        self.assertLessEqual(row["fetched_at"], int(time.time()) + 5)
        self.assertEqual(bytes(row["response_der"]), body)

    def test_rfc5019_caching_headers_and_304(self):
        ns = self.chain()
        d = self.staplerd(ns.ca_file)
        st, h, body = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, body)
        row = d.wait_rows(1)[0]

        cc = [p.strip().lower() for p in h.get("cache-control", "").split(",")]
        for directive in ("public", "no-transform", "must-revalidate"):
            self.assertIn(directive, cc, h.get("cache-control"))
        max_age = [p for p in cc if p.startswith("max-age=")]
        self.assertEqual(len(max_age), 1, h.get("cache-control"))
        age = int(max_age[0][len("max-age="):])
        self.assertGreater(age, 0)
        self.assertLessEqual(age, row["next_update"] - int(time.time()) + 5)

        for name in ("last-modified", "expires", "etag"):
            self.assertIn(name, h)
        expires = email.utils.parsedate_to_datetime(h["expires"]).timestamp()
        self.assertAlmostEqual(expires, row["next_update"], delta=1)
        modified = email.utils.parsedate_to_datetime(h["last-modified"]).timestamp()
        self.assertAlmostEqual(modified, row["this_update"], delta=1)

        st2, h2, body2 = d.staple(self.pem_body(ns), PEM, headers={"If-None-Match": h["etag"]})
        self.assertEqual(st2, 304, body2[:300])
        self.assertEqual(body2, b"")
        # A different validator does not match.
        st3, _, body3 = d.staple(self.pem_body(ns), PEM, headers={"If-None-Match": '"nope"'})
        self.assertEqual(st3, 200)
        self.assertEqual(body3, body)

    # ----------------------------------------------------------------------------------------
    # Cache behaviour

    def test_cache_hit_makes_no_upstream_contact(self):
        # The intermediate is in the bundle, so the bare leaf (PEM or DER) is served too.
        ns = self.chain(upstream="forwarder", ndays=30, bundle="both")
        d = self.staplerd(ns.ca_file)
        st, h, first = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, first)
        self.assertEqual(ns.fwd.count, 1)
        for body, ctype in ((self.pem_body(ns), PEM), (ns.leaf.pem(), PEM),
                            (ns.leaf.der(), DER)):
            st, h, again = d.staple(body, ctype)
            self.assertStaple(st, h, again)
            self.assertEqual(again, first)
        time.sleep(0.3)
        self.assertEqual(ns.fwd.count, 1, ns.fwd.requests)

    def test_cached_staple_served_after_upstream_stopped(self):
        ns = self.chain()
        d = self.staplerd(ns.ca_file)
        st, h, first = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, first)
        ns.resp.stop()
        st, h, again = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, again)
        self.assertEqual(again, first)

    def test_warm_restart_serves_from_database(self):
        ns = self.chain(ndays=30)
        d = self.staplerd(ns.ca_file)
        st, h, first = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, first)
        d.wait_rows(1)
        ns.resp.stop()
        self.assertEqual(d.stop(), 0, "staplerd did not exit 0 on SIGTERM")
        # Whatever now listens on the upstream's port only counts connections.
        counter = ConnectionCounter(ns.resp.port).start()
        self.addCleanup(counter.stop)
        d.start(new_port=True)
        st, h, again = d.staple(self.pem_body(ns), PEM)
        self.assertStaple(st, h, again)
        self.assertEqual(again, first)
        time.sleep(0.3)
        self.assertEqual(counter.count, 0, "a warm start contacted the upstream")

    def test_concurrent_submissions_fetch_once(self):
        ns = self.chain(upstream="forwarder", ndays=30)
        d = self.staplerd(ns.ca_file)
        n = 8
        barrier = threading.Barrier(n)
        results = [None] * n

        def worker(i):
            try:
                barrier.wait(timeout=10)
                results[i] = d.staple(self.pem_body(ns), PEM, timeout=20)
            except Exception as e:      # reported below
                results[i] = e

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for r in results:
            self.assertIsInstance(r, tuple, r)
            self.assertStaple(*r)
        self.assertEqual(len({r[2] for r in results}), 1, "different bytes served")
        self.assertStapleVerifies(results[0][2], ns.inter, ns.root.cert, ns.leaf, "good")
        time.sleep(0.3)
        self.assertEqual(ns.fwd.count, 1, "upstream requests: %r" % ns.fwd.requests)
        self.assertEqual(len(d.wait_rows(1)), 1)

    # ----------------------------------------------------------------------------------------
    # Other routes

    def test_healthz(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.request("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertTrue(h.get("content-type", "").startswith("application/json"))
        doc = json.loads(b.decode())
        self.assertIn("status", doc)

    def test_unknown_path_is_404_json(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        st, h, b = d.request("GET", "/no/such/path")
        self.assertJsonError(st, h, b, 404)
        st, h, b = d.request("POST", "/v1/stapl", body=b"x", headers={"Content-Type": PEM})
        self.assertJsonError(st, h, b, 404)

    def test_wrong_method_is_405_json(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root))
        for method in ("GET", "PUT", "DELETE"):
            st, h, b = d.request(method, "/v1/staple")
            self.assertJsonError(st, h, b, 405)


if __name__ == "__main__":
    unittest.main()
