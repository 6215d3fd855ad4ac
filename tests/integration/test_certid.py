"""The key is the whole CertID, and AIA URLs are taken exactly as written or refused
(issue 9, items 2 and 7), against the real staplerd with unmodified `openssl ocsp` as the
client and as the upstream.

- SHA-256 CertIDs through /ocsp: answered from (or fetched into) a SHA-256 entry that echoes
  the client's CertID; the certificate's SHA-1 staple stays as it was.
- [cache] certid_hash = sha256: staples for submissions are SHA-256, and stay so on refresh.
- Two CAs sharing one key under different names are two issuers with separate entries.
- AIA URLs with a newline, a #fragment or user information are refused with the reason
  (422) and nothing is contacted.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import datetime
import json
import os
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (CA, Cert, CountingForwarder, free_port, IntegrationTestCase, ocsp_url,
                     OPENSSL, PEM, run, setUpModule, staplerd_binary)

SHA1_OID = bytes.fromhex("06052b0e03021a")
SHA256_OID = bytes.fromhex("0609608648016503040201")


def staplerctl_binary():
    return os.environ.get("STAPLERCTL") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "staplerctl")


class CertIdTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.inter = self.pki.intermediate(self.root, "intermediate")
        self.pki.responder(self.inter)
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def upstream(self):
        """Ports for openssl ocsp (the intermediate's responder) and a counting forwarder in
        front of it; leaves point at the forwarder. Make the leaves, then start_upstream():
        the responder reads its index once."""
        return free_port(), free_port()

    def start_upstream(self, port, fwd_port):
        self.responder(self.inter, port=port, ndays=30)
        f = CountingForwarder(port, port=fwd_port).start()
        self.addCleanup(f.stop)
        return f

    def openssl_ocsp(self, issuer, cert, cafile, sha256=False):
        """`openssl ocsp` against staplerd's /ocsp (the digest option applies to the -cert
        after it)."""
        args = [OPENSSL, "ocsp", "-issuer", issuer.cert]
        if sha256:
            args.append("-sha256")
        args += ["-cert", cert.cert, "-url", "http://127.0.0.1:%d/ocsp" % self.d.port,
                 "-CAfile", cafile, "-timeout", "20"]
        p = run(args, check=False, timeout=40)
        return p.stdout + p.stderr

    def verify_respin(self, der, issuer, cafile, cert, sha256=False):
        """`openssl ocsp -respin`, the relying party's check, with the CertID of the given
        algorithm."""
        path = self.save("resp-%d.der" % time.monotonic_ns(), der)
        args = [OPENSSL, "ocsp", "-respin", path, "-issuer", issuer.cert, "-CAfile", cafile]
        if sha256:
            args.append("-sha256")
        args += ["-cert", cert.cert]
        p = run(args, check=False)
        return p.stdout + p.stderr

    def ctl(self, *args):
        return run([staplerctl_binary(), "-c", self.d.conf] + list(args), check=False,
                   timeout=60)

    # ----------------------------------------------------------------------------------------

    def test_openssl_sha256_request_verifies_and_sha1_staple_is_unchanged(self):
        port, fwd_port = self.upstream()
        leaf = self.pki.leaf(self.inter, "leaf", serial="5001", ocsp_urls=[ocsp_url(fwd_port)])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file)
        st, h, sha1_staple = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, sha1_staple[:300])
        self.assertEqual(fwd.count, 1)

        out = self.openssl_ocsp(self.inter, leaf, self.root.cert, sha256=True)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % leaf.cert, out)
        # A miss, forwarded upstream with the client's algorithm.
        self.assertEqual(fwd.count, 2)
        rows = self.d.wait_rows(2, "WHERE serial = ?", (leaf.serial,))
        by_alg = {r["hash_alg"]: r for r in rows}
        self.assertEqual(set(by_alg), {"sha1", "sha256"})
        self.assertIn(SHA256_OID, bytes(by_alg["sha256"]["request_der"]))
        self.assertNotIn(SHA1_OID, bytes(by_alg["sha256"]["request_der"]))
        self.assertIn(SHA1_OID, bytes(by_alg["sha1"]["request_der"]))
        # One issuer identity for both rows (the issuer's SHA-1 hashes).
        self.assertEqual(by_alg["sha1"]["issuer_key_hash"], by_alg["sha256"]["issuer_key_hash"])
        self.assertEqual(by_alg["sha1"]["issuer_key_hash"], self.inter.key_hash())
        self.assertEqual(by_alg["sha1"]["issuer_name_hash"], by_alg["sha256"]["issuer_name_hash"])
        sha256_staple = bytes(by_alg["sha256"]["response_der"])
        out = self.verify_respin(sha256_staple, self.inter, self.root.cert, leaf, sha256=True)
        self.assertIn("Response verify OK", out)
        self.assertIn(": good", out)

        # Again: from the SHA-256 entry, no upstream contact.
        out = self.openssl_ocsp(self.inter, leaf, self.root.cert, sha256=True)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: good" % leaf.cert, out)
        self.assertEqual(fwd.count, 2)
        # The SHA-1 staple is the one it was, byte for byte, and still verifies as SHA-1;
        # a SHA-1 client of /ocsp gets it too.
        st, h, again = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200)
        self.assertEqual(again, sha1_staple)
        self.assertEqual(bytes(by_alg["sha1"]["response_der"]), sha1_staple)
        self.assertStapleVerifies(sha1_staple, self.inter, self.root.cert, leaf, "good")
        out = self.openssl_ocsp(self.inter, leaf, self.root.cert)
        self.assertIn("%s: good" % leaf.cert, out)
        self.assertEqual(fwd.count, 2)
        # staplerctl tells them apart.
        p = self.ctl("show", leaf.serial)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("--hash", p.stderr)
        p = self.ctl("--json", "show", leaf.serial, "--hash", "sha256")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["hash_alg"], "sha256")
        p = self.ctl("show", leaf.serial, "--hash", "sha1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("hash algorithm     sha1", p.stdout)
        p = self.ctl("list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.count(leaf.serial), 2, p.stdout)
        self.assertEqual(p.stdout.count("(sha256)"), 1, p.stdout)

    def test_certid_hash_sha256_config_selects_sha256_staples(self):
        port, fwd_port = self.upstream()
        leaf = self.pki.leaf(self.inter, "leaf", serial="5101", ocsp_urls=[ocsp_url(fwd_port)])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file, extra="[cache]\ncertid_hash = sha256\n")
        st, h, staple = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, staple[:300])
        out = self.verify_respin(staple, self.inter, self.root.cert, leaf, sha256=True)
        self.assertIn("Response verify OK", out)
        self.assertIn(": good", out)
        # It answers the SHA-256 CertID, not the SHA-1 one.
        out = self.verify_respin(staple, self.inter, self.root.cert, leaf)
        self.assertNotIn(": good", out)
        row, = self.d.wait_rows(1)
        self.assertEqual(row["hash_alg"], "sha256")
        self.assertIn(SHA256_OID, bytes(row["request_der"]))
        # A refresh rebuilds the target from the row and keeps its algorithm.
        before = fwd.count
        p = self.ctl("refresh", leaf.serial)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(fwd.count, before + 1)
        row, = self.d.wait_rows(1)
        self.assertEqual(row["hash_alg"], "sha256")
        self.assertIn(SHA256_OID, bytes(row["request_der"]))
        out = self.verify_respin(bytes(row["response_der"]), self.inter, self.root.cert, leaf,
                                 sha256=True)
        self.assertIn(": good", out)
        # Warm start: served from the SHA-256 row, nothing fetched.
        self.assertEqual(self.d.stop(), 0)
        self.d.start(new_port=True)
        st, h, again = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200)
        self.assertEqual(again, bytes(row["response_der"]))
        self.assertEqual(fwd.count, before + 1)
        # The default, and a bad value.
        d2 = self.staplerd(self.ca_file, start=False, extra="[cache]\ncertid_hash = md5\n")
        d2.write_config()
        p = run([staplerd_binary(), "-t", "-c", d2.conf], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("certid_hash: must be sha1, sha256, sha384 or sha512", p.stdout + p.stderr)

    def same_key_root(self, twin, name):
        """A root with twin's key under another name (a CA re-issued under a new name)."""
        cert, key, _, _ = self.pki._paths(name)
        subject = "/O=staplerd tests/CN=%s" % name
        run([OPENSSL, "req", "-x509", "-config", self.pki.cnf, "-extensions", "v3_root",
             "-key", twin.key, "-subj", subject, "-days", "30", "-out", cert])
        d = cert[:-len(".pem")] + ".ca"
        os.makedirs(d, exist_ok=True)
        return CA(name, cert, twin.key, subject, None, d)

    def test_two_cas_sharing_a_key_get_their_own_staples(self):
        ca_a = self.pki.root("ca-a")
        ca_b = self.same_key_root(ca_a, "ca-b")
        self.assertEqual(ca_a.key_hash(), ca_b.key_hash())
        self.pki.responder(ca_a)
        self.pki.responder(ca_b)
        port_a, port_b = free_port(), free_port()
        leaf_a = self.pki.leaf(ca_a, "leaf-a", serial="7777", ocsp_urls=[ocsp_url(port_a)])
        leaf_b = self.pki.leaf(ca_b, "leaf-b", serial="7777", ocsp_urls=[ocsp_url(port_b)],
                               revoked=True)
        self.responder(ca_a, port=port_a, ndays=30)
        self.responder(ca_b, port=port_b, ndays=30)
        self.d = self.staplerd(self.pki.bundle("two.pem", ca_a, ca_b))
        st, _, staple_a = self.d.staple(leaf_a.pem(), PEM)
        self.assertEqual(st, 200, staple_a[:300])
        st, _, staple_b = self.d.staple(leaf_b.pem(), PEM)
        self.assertEqual(st, 200, staple_b[:300])
        self.assertNotEqual(staple_a, staple_b)
        self.assertStapleVerifies(staple_a, ca_a, ca_a.cert, leaf_a, "good")
        self.assertStapleVerifies(staple_b, ca_b, ca_b.cert, leaf_b, "revoked")
        rows = self.d.wait_rows(2)
        self.assertEqual({r["issuer_key_hash"] for r in rows}, {ca_a.key_hash()})
        self.assertEqual(len({r["issuer_name_hash"] for r in rows}), 2)
        conn = sqlite3.connect("file:%s?mode=ro" % self.d.database, uri=True, timeout=5)
        try:
            issuers = conn.execute("SELECT name_hash, key_hash FROM issuer").fetchall()
        finally:
            conn.close()
        self.assertEqual(len(issuers), 2)
        # Each again, from memory: still its own.
        st, _, again = self.d.staple(leaf_b.pem(), PEM)
        self.assertEqual(again, staple_b)
        st, _, again = self.d.staple(leaf_a.pem(), PEM)
        self.assertEqual(again, staple_a)
        # The OCSP proxy tells them apart too.
        out = self.openssl_ocsp(ca_b, leaf_b, ca_b.cert)
        self.assertIn("Response verify OK", out)
        self.assertIn("%s: revoked" % leaf_b.cert, out)
        out = self.openssl_ocsp(ca_a, leaf_a, ca_a.cert)
        self.assertIn("%s: good" % leaf_a.cert, out)
        # And staplerctl: the serial is ambiguous by key hash, chosen by name hash.
        p = self.ctl("show", "7777", "--issuer", ca_a.key_hash())
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("several issuers", p.stderr)
        name_b = [r["issuer_name_hash"] for r in rows if r["cert_status"] == "revoked"][0]
        p = self.ctl("show", "7777", "--issuer", name_b)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)     # revoked
        self.assertIn("revoked", p.stdout)

    # ----------------------------------------------------------------------------------------
    # AIA URLs as written, or refused

    def crafted_leaf(self, name, serial, urls):
        """A leaf of the intermediate whose AIA holds exactly these URI strings (what the
        openssl CLI cannot write: a newline inside one), signed with python-cryptography."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

        with open(self.inter.key, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        with open(self.inter.cert, "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                         "staplerd tests"),
                                      x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(ca_cert.subject).public_key(key.public_key())
             .serial_number(int(serial, 16)).not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.AuthorityInformationAccess([
                 x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                        x509.UniformResourceIdentifier(u)) for u in urls]),
                 critical=False))
        pem = b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        c = Cert(name, self.save(name + ".pem", pem), None, "/O=staplerd tests/CN=" + name,
                 self.inter)
        self.inter.add_to_index(c)
        return c

    def test_aia_urls_with_newline_fragment_or_userinfo_are_refused(self):
        c1, c2 = self.counter(), self.counter()
        port, fwd_port = self.upstream()
        good = ocsp_url(fwd_port)
        cases = [
            ("newline", [c1.url + "\n" + c2.url], "control character (0x0a"),
            ("fragment", [c1.url + "ocsp#frag"], "#fragment"),
            ("userinfo", ["http://user:pass@127.0.0.1:%d/" % c1.port], "user information"),
        ]
        leaves = [(what, self.crafted_leaf(what, "6%03d" % i, urls), why)
                  for i, (what, urls, why) in enumerate(cases)]
        # A refused URL does not spoil a good one after it.
        mixed = self.crafted_leaf("mixed", "6100", [c1.url + "\n" + c2.url, good])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file)
        for what, leaf, why in leaves:
            st, h, body = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
            doc = self.assertJsonError(st, h, body, 422)
            self.assertIn("AIA OCSP URL 1 refused", doc["error"], what)
            self.assertIn(why, doc["error"], what)
            # Chain staples: the certificate cannot be left out silently.
            st, h, body = self.d.request("POST", "/v1/staples",
                                         body=leaf.pem() + self.inter.pem(),
                                         headers={"Content-Type": PEM})
            doc = self.assertJsonError(st, h, body, 422)
            self.assertIn(why, doc["error"], what)
        st, h, body = self.d.staple(mixed.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertStapleVerifies(body, self.inter, self.root.cert, mixed, "good")
        time.sleep(0.5)
        self.assertEqual(c1.count, 0, "a refused AIA URL was contacted")
        self.assertEqual(c2.count, 0, "the part after a newline was contacted")
        # The mixed one went to its good URL only.
        self.assertEqual(fwd.count, 1)
        rows = self.d.db_rows()
        for r in rows:
            self.assertEqual(r["ocsp_urls"], "%d:%s," % (len(good), good))
        # The refusal is logged with its reason.
        with open(self.d.log, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("user information", log)


if __name__ == "__main__":
    unittest.main()
