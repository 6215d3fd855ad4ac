"""The OCSP responder interface (POST /ocsp, GET /ocsp/{request}) and [responders]
overrides, with unmodified `openssl ocsp` as the client and as the upstream.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import base64
import email.utils
import hashlib
import os
import sys
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, ocsp_url, OPENSSL, PEM, run, setUpModule,
                     spki_key, staplerd_binary, subject_name_der)

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"

# Unsigned OCSPResponses holding only a responseStatus (RFC 6960 §4.2.1).
MALFORMED = bytes.fromhex("3003 0a01 01".replace(" ", ""))
UNAUTHORIZED = bytes.fromhex("3003 0a01 06".replace(" ", ""))

SHA1_OID = bytes.fromhex("06052b0e03021a")
SHA256_OID = bytes.fromhex("0609608648016503040201")
SHA384_OID = bytes.fromhex("0609608648016503040202")
SHA512_OID = bytes.fromhex("0609608648016503040203")
MD5_OID = bytes.fromhex("06082a864886f70d0205")
NONCE_OID = bytes.fromhex("06092b0601050507300102")



# --------------------------------------------------------------------------------------------
# Building OCSP requests by hand (what a client that is not openssl may send)

def der(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def seq(*items):
    return der(0x30, b"".join(items))


def cert_id(issuer_der, serial_hex, alg="sha1", name_hash=None, null_params=True):
    """DER CertID; the hash AlgorithmIdentifier's parameters NULL (as openssl writes them) or
    absent (as Bouncy Castle and RFC 5754 do)."""
    h = hashlib.new(alg)
    h.update(subject_name_der(issuer_der))
    nh = name_hash if name_hash is not None else h.digest()
    kh = hashlib.new(alg, spki_key(issuer_der)).digest()
    oid = {"sha1": SHA1_OID, "sha256": SHA256_OID, "sha384": SHA384_OID,
           "sha512": SHA512_OID, "md5": MD5_OID}[alg]
    serial = bytes.fromhex(serial_hex if len(serial_hex) % 2 == 0 else "0" + serial_hex)
    if serial[0] & 0x80:
        serial = b"\x00" + serial
    return seq(seq(oid, b"\x05\x00" if null_params else b""), der(0x04, nh), der(0x04, kh), der(0x02, serial))


def ocsp_request(ids, nonce=None):
    """DER OCSPRequest for the CertIDs ids, with a nonce extension when nonce is bytes."""
    request_list = seq(*[seq(i) for i in ids])
    if nonce is None:
        return seq(seq(request_list))
    ext = seq(NONCE_OID, der(0x04, der(0x04, nonce)))
    return seq(seq(request_list, der(0xA2, seq(ext))))


class OcspTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.inter = self.pki.intermediate(self.root, "intermediate")
        self.pki.responder(self.inter)
        self.port = free_port()
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def leaves(self, *specs):
        """Leaves of the intermediate, each (name, serial, revoked), AIA at self.port."""
        return [self.pki.leaf(self.inter, name, serial=serial, ocsp_urls=[ocsp_url(self.port)],
                              revoked=revoked) for name, serial, revoked in specs]

    def start(self, fwd=False, **kw):
        """The responder (index complete), optionally a counting forwarder, then staplerd."""
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        self.fwd = self.forwarder(self.port) if fwd else None
        self.d = self.staplerd(self.ca_file, **kw)
        return self.d

    def submit(self, leaf):
        st, h, body = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        return body

    def openssl_ocsp(self, issuer, *certs, extra=()):
        args = [OPENSSL, "ocsp", "-issuer", issuer.cert, "-url",
                "http://127.0.0.1:%d/ocsp" % self.d.port, "-CAfile", self.root.cert,
                "-timeout", "20"]
        for c in certs:
            args += ["-cert", c.cert]
        p = run(args + list(extra), check=False, timeout=40)
        return p.stdout + p.stderr

    def post(self, body):
        return self.d.request("POST", "/ocsp", body=body, headers={"Content-Type": OCSP_REQUEST})

    def assertOcspStatus(self, status, headers, body, expected):
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(headers.get("content-type"), OCSP_RESPONSE)
        self.assertEqual(body, expected)
        cc = [p.strip() for p in headers.get("cache-control", "").split(",")]
        self.assertIn("max-age=0", cc)
        self.assertIn("no-cache", cc)

    def cached_der(self, leaf):
        rows = self.d.wait_rows(1, "WHERE serial = ?", (leaf.serial,))
        return bytes(rows[0]["response_der"])

    # ----------------------------------------------------------------------------------------
    # openssl ocsp -url against staplerd

    def test_openssl_client_cached_uncached_and_revoked(self):
        cached, uncached, revoked = self.leaves(("cached", "2001", False),
                                                ("uncached", "2002", False),
                                                ("revoked", "2003", True))
        self.start(fwd=False)
        self.submit(cached)         # the intermediate becomes a known issuer with its URL

        out = self.openssl_ocsp(self.inter, cached)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % cached.cert, out)

        out = self.openssl_ocsp(self.inter, uncached)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % uncached.cert, out)

        out = self.openssl_ocsp(self.inter, revoked)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: revoked" % revoked.cert, out)
        # Anonymous misses are answered, never stored (test_front_door_limits.py): only the submission.
        time.sleep(0.3)
        self.assertEqual([r["serial"] for r in self.d.db_rows()], [cached.serial])

    def test_cached_hit_makes_no_upstream_contact(self):
        leaf, = self.leaves(("leaf", "2101", False))
        self.resp = self.responder(self.inter, port=self.port, ndays=30)
        self.d = self.staplerd(self.ca_file)
        self.submit(leaf)
        self.resp.stop()            # nothing upstream any more
        out = self.openssl_ocsp(self.inter, leaf)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % leaf.cert, out)
        st, h, body = self.post(ocsp_request([cert_id(self.inter.der(), leaf.serial)]))
        self.assertEqual(st, 200)
        self.assertEqual(body, self.cached_der(leaf))

    def test_known_issuer_learned_at_warm_start(self):
        seen, unseen = self.leaves(("seen", "2201", False), ("unseen", "2202", False))
        self.start()
        self.submit(seen)
        self.d.wait_rows(1)
        self.assertEqual(self.d.stop(), 0)
        self.d.start(new_port=True)
        out = self.openssl_ocsp(self.inter, unseen)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % unseen.cert, out)

    # ----------------------------------------------------------------------------------------
    # GET, caching headers, 304, quirks

    def get_path(self, req_der, quirk=None):
        b64 = base64.b64encode(req_der).decode()
        if quirk == "raw":
            return "/ocsp/" + b64
        if quirk == "space":
            return "/ocsp/" + urllib.parse.quote(b64.replace("+", " "), safe="")
        if quirk == "lower":
            return "/ocsp/" + "".join("%%%02x" % ord(c) if c in "+/=" else c for c in b64)
        path = "/ocsp/" + urllib.parse.quote(b64, safe="")
        if quirk == "double":
            path = "/ocsp//" + path[len("/ocsp/"):]
        return path

    def test_get_caching_headers_and_304(self):
        leaf, = self.leaves(("leaf", "2301", False))
        self.start()
        self.submit(leaf)
        req = ocsp_request([cert_id(self.inter.der(), leaf.serial)])
        st, h, body = self.d.request("GET", self.get_path(req))
        self.assertEqual(st, 200, body[:300])
        self.assertEqual(h.get("content-type"), OCSP_RESPONSE)
        row = self.d.wait_rows(1)[0]
        self.assertEqual(body, bytes(row["response_der"]))
        cc = [p.strip().lower() for p in h.get("cache-control", "").split(",")]
        for directive in ("public", "no-transform", "must-revalidate"):
            self.assertIn(directive, cc)
        age = int([p for p in cc if p.startswith("max-age=")][0][len("max-age="):])
        self.assertGreater(age, 0)
        self.assertLessEqual(age, row["next_update"] - int(time.time()) + 5)
        self.assertAlmostEqual(email.utils.parsedate_to_datetime(h["expires"]).timestamp(),
                               row["next_update"], delta=1)
        self.assertAlmostEqual(email.utils.parsedate_to_datetime(h["last-modified"]).timestamp(),
                               row["this_update"], delta=1)
        self.assertIn("etag", h)
        st2, _, body2 = self.d.request("GET", self.get_path(req),
                                       headers={"If-None-Match": h["etag"]})
        self.assertEqual(st2, 304)
        self.assertEqual(body2, b"")
        out = self.verify(body, leaf)
        self.assertIn("%s: good" % leaf.cert, out)

    def verify(self, der_bytes, leaf, issuer=None):
        path = self.save("resp-%s.der" % leaf.name, der_bytes)
        p = run([OPENSSL, "ocsp", "-respin", path, "-issuer", (issuer or self.inter).cert,
                 "-CAfile", self.root.cert, "-cert", leaf.cert], check=False)
        out = p.stdout + p.stderr
        self.assertIn("Response verify OK", out)
        return out

    def test_get_quirks(self):
        leaf, = self.leaves(("leaf", "2401", False))
        self.start()
        self.submit(leaf)
        expected = self.cached_der(leaf)
        cid = cert_id(self.inter.der(), leaf.serial)
        # A nonce (ignored) whose bytes make the base64 hold '+', '/' and '=' padding.
        for i in range(5000):
            nonce = os.urandom(16 + i % 3)
            req = ocsp_request([cid], nonce=nonce)
            b64 = base64.b64encode(req).decode()
            if "+" in b64 and "/" in b64 and b64.endswith("="):
                break
        else:
            self.fail("no request with +, / and = found")
        for quirk in (None, "raw", "space", "double", "lower"):
            path = self.get_path(req, quirk)
            st, h, body = self.d.request("GET", path)
            self.assertEqual(st, 200, "%s: %r" % (quirk, body[:100]))
            self.assertEqual(body, expected, "quirk %s, path %s" % (quirk, path))
        # The escapes in use, so the quirks above were really exercised.
        self.assertIn("%20", self.get_path(req, "space"))
        self.assertIn("%2f", self.get_path(req, "lower"))
        self.assertIn("//", self.get_path(req, "double"))

    # ----------------------------------------------------------------------------------------
    # Refusals: unsigned statuses

    def test_unknown_issuer_is_unauthorized(self):
        leaf, = self.leaves(("leaf", "2501", False))
        self.start()
        self.submit(leaf)
        rogue = self.pki.root("rogue")
        rogue_leaf = self.pki.leaf(rogue, "rogue-leaf", serial="2502",
                                   ocsp_urls=[ocsp_url(self.port)], index=False)
        out = self.openssl_ocsp(rogue, rogue_leaf)
        self.assertIn("unauthorized", out)
        st, h, body = self.post(ocsp_request([cert_id(rogue.der(), "2502")]))
        self.assertOcspStatus(st, h, body, UNAUTHORIZED)
        st, h, body = self.d.request("GET", self.get_path(
            ocsp_request([cert_id(rogue.der(), "2502")])))
        self.assertOcspStatus(st, h, body, UNAUTHORIZED)
        # The right key hash with another issuer's name hash.
        bad = cert_id(self.inter.der(), leaf.serial, name_hash=hashlib.sha1(b"x").digest())
        st, h, body = self.post(ocsp_request([bad]))
        self.assertOcspStatus(st, h, body, UNAUTHORIZED)
        # A trust anchor with no upstream known for it.
        st, h, body = self.post(ocsp_request([cert_id(self.root.der(), self.inter.serial)]))
        self.assertOcspStatus(st, h, body, UNAUTHORIZED)

    def test_junk_and_several_certs_are_malformed(self):
        one, two = self.leaves(("one", "2601", False), ("two", "2602", False))
        self.start()
        self.submit(one)
        for junk in (b"junk", b"\x30\x03\x02\x01\x01", os.urandom(200)):
            st, h, body = self.post(junk)
            self.assertOcspStatus(st, h, body, MALFORMED)
        st, h, body = self.d.request("GET", "/ocsp/not!base64")
        self.assertOcspStatus(st, h, body, MALFORMED)
        st, h, body = self.d.request("GET", "/ocsp/")
        self.assertOcspStatus(st, h, body, MALFORMED)
        out = self.openssl_ocsp(self.inter, one, two)
        self.assertIn("malformedrequest", out.lower())
        req = ocsp_request([cert_id(self.inter.der(), one.serial),
                            cert_id(self.inter.der(), two.serial)])
        st, h, body = self.post(req)
        self.assertOcspStatus(st, h, body, MALFORMED)
        st, _, _ = self.d.request("GET", "/healthz")
        self.assertEqual(st, 200)

    def test_nonce_is_ignored(self):
        leaf, = self.leaves(("leaf", "2701", False))
        self.start()
        self.submit(leaf)
        expected = self.cached_der(leaf)
        st, h, body = self.post(ocsp_request([cert_id(self.inter.der(), leaf.serial)],
                                             nonce=os.urandom(16)))
        self.assertEqual(st, 200)
        self.assertEqual(body, expected)
        # openssl ocsp sends a nonce by default; it warns, and accepts the response.
        out = self.openssl_ocsp(self.inter, leaf)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % leaf.cert, out)

    def test_requests_the_small_reader_leaves_to_openssl(self):
        """The hit path reads RFC 9919's lightweight request shape without OpenSSL; a request
        OpenSSL accepts in another shape (a requestorName, a length in a longer form than DER
        allows, BER's indefinite length, AlgorithmIdentifier parameters absent) is still
        answered with the cached staple, by POST and by GET, and makes no upstream contact."""
        leaf, = self.leaves(("leaf", "2702", False))
        self.start(fwd=True)
        self.submit(leaf)
        expected = self.cached_der(leaf)
        fetched = self.fwd.count
        cid = cert_id(self.inter.der(), leaf.serial)
        requestor = der(0xA1, der(0x82, b"head-end.example"))         # [1] dNSName
        long_cid = b"\x30\x81" + cid[1:]       # the CertID's length in a 2-byte form
        request_list = seq(seq(cid))
        indefinite = b"\x30\x80" + seq(request_list) + b"\x00\x00"
        shapes = {
            "requestorName": seq(seq(requestor, request_list)),
            "non-minimal length": seq(seq(seq(seq(long_cid)))),
            "indefinite length": indefinite,
            "lightweight": ocsp_request([cid]),
        }
        for name, req in shapes.items():
            with self.subTest(shape=name):
                st, h, body = self.post(req)
                self.assertEqual(st, 200)
                self.assertEqual(body, expected, name)
                path = "/ocsp/" + urllib.parse.quote(base64.b64encode(req).decode(), safe="")
                st, h, body = self.d.request("GET", path)
                self.assertEqual(st, 200)
                self.assertEqual(body, expected, name)
        self.assertEqual(self.fwd.count, fetched)

    def test_md5_certid_is_unauthorized(self):
        # SHA-1, SHA-256, SHA-384 and SHA-512 CertIDs are served (test_service_certid.py); another
        # algorithm is refused rather than answered with a response the client cannot match.
        leaf, = self.leaves(("leaf", "2801", False))
        self.start()
        self.submit(leaf)
        st, h, body = self.post(ocsp_request([cert_id(self.inter.der(), leaf.serial, "md5")]))
        self.assertOcspStatus(st, h, body, UNAUTHORIZED)

    def test_oversized_post_is_413(self):
        self.start()
        st, h, body = self.post(b"\x30" * (70 * 1024))
        self.assertJsonError(st, h, body, 413)


class ResponderOverrideTest(IntegrationTestCase):

    def test_override_replaces_aia_for_submissions_and_proxy(self):
        root = self.pki.root("root")
        self.pki.responder(root)
        counter = self.counter()
        port = free_port()
        dead = free_port()
        a = self.pki.leaf(root, "a", serial="3001", ocsp_urls=[counter.url])
        b = self.pki.leaf(root, "b", serial="3002", ocsp_urls=[counter.url])
        c = self.pki.leaf(root, "c", serial="3003", ocsp_urls=[counter.url], revoked=True)
        self.responder(root, port=port, ndays=30)
        # Colons and lower case as operators paste them; a dead first URL fails over.
        kh = root.key_hash().lower()
        kh = ":".join(kh[i:i + 2] for i in range(0, len(kh), 2))
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root),
                          extra="[responders]\n%s = %s %s\n" % (kh, ocsp_url(dead),
                                                                ocsp_url(port)))
        # An anchor with an override is served by the proxy before any submission.
        p = run([OPENSSL, "ocsp", "-issuer", root.cert, "-cert", c.cert, "-url",
                 "http://127.0.0.1:%d/ocsp" % d.port, "-CAfile", root.cert], check=False,
                timeout=40)
        self.assertIn("Response verify OK", p.stdout + p.stderr)
        self.assertIn("%s: revoked" % c.cert, p.stdout)
        st, h, body = d.staple(a.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertStapleVerifies(body, root, root.cert, a, "good")
        st, h, body = d.request("POST", "/v1/staples", body=b.pem(), headers={"Content-Type": PEM})
        self.assertEqual(st, 200, body[:300])
        time.sleep(0.3)
        self.assertEqual(counter.count, 0, "the AIA URL was contacted despite the override")
        # The two submissions are stored; the anonymous /ocsp miss for c is held apart.
        rows = d.wait_rows(2)
        self.assertEqual(sorted(r["serial"] for r in rows), [a.serial, b.serial])
        self.assertEqual({r["ocsp_url"] for r in rows}, {ocsp_url(port)})
        # Submitted certificates' rows keep their own AIA URLs.
        # (netstrings: "LEN:URL," per URL)
        self.assertEqual({r["ocsp_urls"] for r in rows if r["serial"] != c.serial},
                         {"%d:%s," % (len(counter.url), counter.url)})

    def test_bad_override_is_a_config_error(self):
        root = self.pki.root("root")
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root), start=False,
                          allow="127.0.0.1",
                          extra="[responders]\n%s = http://ocsp.example/\n" % root.key_hash())
        d.write_config()
        p = run([staplerd_binary(), "-t", "-c", d.conf], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:%d: " % (d.conf, d.config_text().count("\n")), p.stderr + p.stdout)
        self.assertIn("allow", p.stderr + p.stdout)
        d.extra = "[responders]\nnot-a-hash = http://127.0.0.1/\n"
        d.write_config()
        p = run([staplerd_binary(), "-t", "-c", d.conf], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not-a-hash", p.stderr + p.stdout)


if __name__ == "__main__":
    unittest.main()
