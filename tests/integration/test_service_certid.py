"""The key is the whole CertID, and AIA URLs are taken exactly as written or refused
(issue 9, items 2 and 7), against the real staplerd with unmodified `openssl ocsp` as the
client and as the upstream.

- SHA-256 CertIDs through /ocsp: answered from (or fetched into) a SHA-256 entry that echoes
  the client's CertID; the certificate's SHA-1 staple stays as it was.
- [cache] certid_hash = sha256: staples for submissions are SHA-256, and stay so on refresh.
- Two CAs sharing one key under different names are two issuers with separate entries.
- AIA URLs with a newline, a #fragment or user information are refused with the reason
  (422) and nothing is contacted.
- The key is the CertID as encoded (issue 21, item 1): `openssl ocsp -sha256` (hash
  parameters NULL) and Bouncy Castle (parameters absent, RFC 5754) asking for one certificate,
  in either order, are two entries, each fetched upstream in its own encoding and answered
  with a response that echoes its CertID byte for byte; both verify, also after a refresh and
  a restart. Bouncy Castle is a small Java client (tests/integration/bc/OcspClient.java)
  compiled here with javac against Debian's libbcpkix-java.
- SHA-384 and SHA-512 CertIDs (issue 21, item 2): `openssl ocsp -sha384`/`-sha512`, Bouncy
  Castle, python-cryptography and hand-built GET requests against /ocsp; [cache]
  certid_hash = sha512 for submissions; staplerctl show and verify.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import atexit
import base64
import datetime
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (CA, Cert, CountingForwarder, free_port, IntegrationTestCase, ocsp_url,
                     OPENSSL, PEM, run, setUpModule, spki_key, staplerd_binary)

SHA1_OID = bytes.fromhex("06052b0e03021a")
SHA256_OID = bytes.fromhex("0609608648016503040201")
OIDS = {"sha1": SHA1_OID, "sha256": SHA256_OID,
        "sha384": bytes.fromhex("0609608648016503040202"),
        "sha512": bytes.fromhex("0609608648016503040203")}


def alg_id(alg, null_params):
    """The DER AlgorithmIdentifier of a CertID hashed with alg, parameters NULL or absent."""
    body = OIDS[alg] + (b"\x05\x00" if null_params else b"")
    return bytes([0x30, len(body)]) + body


# Bouncy Castle's jars (Debian libbcpkix-java) and the client compiled once per run.
BC_JARS = ["/usr/share/java/bcprov.jar", "/usr/share/java/bcpkix.jar",
           "/usr/share/java/bcutil.jar"]
_bc_dir = None


def bc_classpath():
    """Compiles tests/integration/bc/OcspClient.java (once); returns the class path, or raises
    AssertionError naming what is missing (scripts/deps.sh installs it)."""
    global _bc_dir
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            raise AssertionError("%s is missing: scripts/deps.sh installs a JDK" % tool)
    for jar in BC_JARS:
        if not os.path.exists(jar):
            raise AssertionError("%s is missing: scripts/deps.sh installs libbcpkix-java" % jar)
    cp = ":".join(BC_JARS)
    if _bc_dir is None:
        d = tempfile.mkdtemp(prefix="bc-", dir=os.environ.get("STAPLER_TEST_TMP") or None)
        atexit.register(shutil.rmtree, d, True)
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bc", "OcspClient.java")
        run(["javac", "-nowarn", "-cp", cp, "-d", d, src], timeout=120)
        _bc_dir = d
    return _bc_dir + ":" + cp


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

    def openssl_ask(self, cert, alg):
        """`openssl ocsp -ALG` (hash parameters NULL) against staplerd's /ocsp; asserts the
        response verifies and says good."""
        p = run([OPENSSL, "ocsp", "-issuer", self.inter.cert, "-" + alg, "-cert", cert.cert,
                 "-url", "http://127.0.0.1:%d/ocsp" % self.d.port, "-CAfile", self.root.cert,
                 "-timeout", "20"], check=False, timeout=40)
        out = p.stdout + p.stderr
        self.assertIn("Response verify OK", out, "openssl -%s" % alg)
        self.assertIn("%s: good" % cert.cert, out, "openssl -%s" % alg)

    def bc_ask(self, cert, alg, params="absent"):
        """Bouncy Castle's client against staplerd's /ocsp; asserts it accepts the answer
        (signature, a SingleResponse equal to its CertID byte for byte, status good). Returns
        (request DER, response DER)."""
        try:
            cp = bc_classpath()
        except AssertionError as e:
            self.skip_unless_ci(str(e))
        prefix = os.path.join(self.tmp, "bc-%d" % time.monotonic_ns())
        p = run(["java", "-cp", cp, "OcspClient", self.inter.cert, cert.cert,
                 "http://127.0.0.1:%d/ocsp" % self.d.port, alg, params, prefix],
                check=False, timeout=60)
        self.assertEqual(p.returncode, 0, "Bouncy Castle %s/%s: %s%s" % (alg, params, p.stdout,
                                                                         p.stderr))
        self.assertIn("status: good", p.stdout)
        with open(prefix + ".req", "rb") as f:
            req = f.read()
        with open(prefix + ".resp", "rb") as f:
            resp = f.read()
        self.assertIn(alg_id(alg, params == "null"), req)
        return req, resp

    def rows_of(self, serial, alg):
        """The rows of serial under alg, by their parameters' encoding."""
        rows = self.d.db_rows("WHERE serial = ? AND hash_alg = ?", (serial, alg))
        return {r["hash_params"]: r for r in rows}

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

    # ----------------------------------------------------------------------------------------
    # The key is the CertID as encoded (issue 21, item 1)

    def test_openssl_then_bouncy_castle_get_their_own_certid(self):
        port, fwd_port = self.upstream()
        leaf = self.pki.leaf(self.inter, "leaf", serial="5201", ocsp_urls=[ocsp_url(fwd_port)])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file)
        # A submission first: the certificate is known, so /ocsp misses for it are stored.
        st, h, body = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        self.assertEqual(fwd.count, 1)
        null_id, absent_id = alg_id("sha256", True), alg_id("sha256", False)

        self.openssl_ask(leaf, "sha256")
        self.assertEqual(fwd.count, 2)
        # Bouncy Castle's CertID differs only in the parameters: a miss of its own, fetched
        # upstream in its encoding (an answer for openssl's CertID would not equal its own).
        bc_req, bc_resp = self.bc_ask(leaf, "sha256")
        self.assertEqual(fwd.count, 3)
        self.d.wait_rows(3, "WHERE serial = ?", (leaf.serial,))
        rows = self.rows_of(leaf.serial, "sha256")
        self.assertEqual(set(rows), {"null", "absent"})
        self.assertIn(null_id, bytes(rows["null"]["request_der"]))
        self.assertNotIn(absent_id, bytes(rows["null"]["request_der"]))
        self.assertIn(null_id, bytes(rows["null"]["response_der"]))
        self.assertIn(absent_id, bytes(rows["absent"]["request_der"]))
        self.assertNotIn(null_id, bytes(rows["absent"]["request_der"]))
        self.assertIn(absent_id, bytes(rows["absent"]["response_der"]))
        self.assertEqual(bytes(rows["absent"]["response_der"]), bc_resp)
        # The request sent upstream carried Bouncy Castle's CertID byte for byte.
        self.assertEqual(bytes(rows["absent"]["request_der"]), bc_req)

        # Again, each from its own entry in memory: no upstream contact, both still verify.
        self.openssl_ask(leaf, "sha256")
        self.assertEqual(self.bc_ask(leaf, "sha256")[1], bc_resp)
        self.assertEqual(fwd.count, 3)

        # staplerctl tells the two apart.
        p = self.ctl("show", leaf.serial, "--hash", "sha256")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("--params", p.stderr)
        self.assertEqual(sorted(p.stderr.strip().rsplit(" ", 1)[1].split(",")),
                         ["absent", "null"], p.stderr)
        p = self.ctl("--json", "show", leaf.serial, "--hash", "sha256", "--params", "absent")
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual((doc["hash_alg"], doc["hash_params"]), ("sha256", "absent"))
        p = self.ctl("list")
        self.assertEqual(p.stdout.count(leaf.serial), 3, p.stdout)
        self.assertEqual(p.stdout.count("(sha256, absent params)"), 1, p.stdout)
        self.assertEqual(p.stdout.count("(sha256)"), 1, p.stdout)

        # A refresh re-sends the stored request: the encoding is kept.
        p = self.ctl("--json", "refresh", leaf.serial, "--hash", "sha256", "--params", "absent")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout)["params"], "absent")
        self.assertEqual(fwd.count, 4)
        rows = self.rows_of(leaf.serial, "sha256")
        self.assertEqual(bytes(rows["absent"]["request_der"]), bc_req)
        self.assertIn(absent_id, bytes(rows["absent"]["response_der"]))
        # Warm start: each is served from its row, nothing fetched.
        self.assertEqual(self.d.stop(), 0)
        self.d.start(new_port=True)
        self.bc_ask(leaf, "sha256")
        self.openssl_ask(leaf, "sha256")
        self.assertEqual(fwd.count, 4)
        # list --json names the form of each; evict takes one form and leaves the other.
        p = self.ctl("--json", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        forms = sorted((e["hash_alg"], e["hash_params"]) for e in json.loads(p.stdout)["entries"]
                       if e["serial"] == leaf.serial)
        self.assertEqual(forms, [("sha1", "null"), ("sha256", "absent"), ("sha256", "null")])
        p = self.ctl("--json", "evict", leaf.serial, "--hash", "sha256", "--params", "null")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout)["params"], "null")
        self.assertEqual(set(self.rows_of(leaf.serial, "sha256")), {"absent"})
        self.bc_ask(leaf, "sha256")
        self.assertEqual(fwd.count, 4)

    def test_bouncy_castle_then_openssl_for_an_unknown_certificate(self):
        """Neither asked before and nothing submitted: the anonymous misses (held apart from
        the cache) are two entries too."""
        port, fwd_port = self.upstream()
        leaf = self.pki.leaf(self.inter, "leaf", serial="5202", ocsp_urls=[ocsp_url(fwd_port)])
        other = self.pki.leaf(self.inter, "other", serial="5203",
                              ocsp_urls=[ocsp_url(fwd_port)])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file)
        # The issuer is learned from another certificate's submission.
        st, h, body = self.d.staple(other.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        before = fwd.count
        bc_req, bc_resp = self.bc_ask(leaf, "sha256")
        self.assertEqual(fwd.count, before + 1)
        self.openssl_ask(leaf, "sha256")
        self.assertEqual(fwd.count, before + 2)
        self.assertEqual(self.bc_ask(leaf, "sha256")[1], bc_resp)
        self.openssl_ask(leaf, "sha256")
        self.assertEqual(fwd.count, before + 2)
        # SHA-1 too: Bouncy Castle with absent parameters, openssl with NULL.
        self.bc_ask(leaf, "sha1")
        self.openssl_ask(leaf, "sha1")
        self.assertEqual(fwd.count, before + 4)

    # ----------------------------------------------------------------------------------------
    # SHA-384 and SHA-512 CertIDs (issue 21, item 2)

    def python_ask(self, cert, alg):
        """python-cryptography's OCSP request builder as the client, over POST; returns the
        parsed response after checking its CertID's algorithm, serial and status."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        with open(cert.cert, "rb") as f:
            c = x509.load_pem_x509_certificate(f.read())
        with open(self.inter.cert, "rb") as f:
            i = x509.load_pem_x509_certificate(f.read())
        md = {"sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[alg]
        req = ocsp.OCSPRequestBuilder().add_certificate(c, i, md).build()
        st, h, body = self.d.request("POST", "/ocsp",
                                     body=req.public_bytes(serialization.Encoding.DER),
                                     headers={"Content-Type": "application/ocsp-request"})
        self.assertEqual(st, 200)
        resp = ocsp.load_der_ocsp_response(body)
        self.assertEqual(resp.response_status, ocsp.OCSPResponseStatus.SUCCESSFUL)
        self.assertEqual(resp.hash_algorithm.name, alg)
        self.assertEqual(resp.serial_number, c.serial_number)
        self.assertEqual(resp.certificate_status, ocsp.OCSPCertStatus.GOOD)
        self.assertEqual(resp.issuer_key_hash,
                         __import__("hashlib").new(alg, spki_key(self.inter.der())).digest())
        return resp

    def test_sha384_and_sha512_certids_through_ocsp(self):
        from test_service_ocsp import cert_id, ocsp_request

        port, fwd_port = self.upstream()
        leaf = self.pki.leaf(self.inter, "leaf", serial="5301", ocsp_urls=[ocsp_url(fwd_port)])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file)
        st, h, body = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        chain = self.save("inter.pem", self.inter.pem())
        for alg in ("sha384", "sha512"):
            with self.subTest(alg=alg):
                before = fwd.count
                self.openssl_ask(leaf, alg)
                self.assertEqual(fwd.count, before + 1)
                rows = self.d.wait_rows(1, "WHERE serial = ? AND hash_alg = ?",
                                        (leaf.serial, alg))
                self.assertEqual(rows[0]["hash_params"], "null")
                self.assertIn(alg_id(alg, True), bytes(rows[0]["request_der"]))
                staple = bytes(rows[0]["response_der"])
                # The same CertID built by hand, by GET and by POST: hits, the same bytes.
                req = ocsp_request([cert_id(self.inter.der(), leaf.serial, alg)])
                path = "/ocsp/" + urllib.parse.quote(base64.b64encode(req).decode(), safe="")
                st, h, got = self.d.request("GET", path)
                self.assertEqual((st, got), (200, staple))
                st, h, got = self.d.request("POST", "/ocsp", body=req,
                                            headers={"Content-Type": "application/ocsp-request"})
                self.assertEqual((st, got), (200, staple))
                self.python_ask(leaf, alg)
                self.openssl_ask(leaf, alg)
                after_openssl = fwd.count
                # Bouncy Castle, parameters absent: an entry of its own.
                self.bc_ask(leaf, alg)
                self.assertEqual(fwd.count, after_openssl + 1)
                self.bc_ask(leaf, alg)
                self.assertEqual(fwd.count, after_openssl + 1)
                # The relying party's check (the verify API) takes the SHA-2 staple.
                path = self.save("staple-%s.der" % alg, staple)
                p = self.ctl("verify", "--cert", leaf.cert, "--chain", chain, "--staple", path,
                             "--ca", self.root.cert)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("good", p.stdout)
                p = self.ctl("--json", "show", leaf.serial, "--hash", alg, "--params", "null")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout)["hash_alg"], alg)

    def certid_hash_for_submissions(self, alg, serial):
        """[cache] certid_hash = alg: submissions get staples of that CertID, kept on refresh,
        and /ocsp answers the same CertID from the same entry."""
        port, fwd_port = self.upstream()
        leaf = self.pki.leaf(self.inter, "leaf", serial=serial, ocsp_urls=[ocsp_url(fwd_port)])
        fwd = self.start_upstream(port, fwd_port)
        self.d = self.staplerd(self.ca_file, extra="[cache]\ncertid_hash = %s\n" % alg)
        st, h, staple = self.d.staple(leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, staple[:300])
        path = self.save("staple.der", staple)
        p = run([OPENSSL, "ocsp", "-respin", path, "-issuer", self.inter.cert,
                 "-CAfile", self.root.cert, "-" + alg, "-cert", leaf.cert], check=False)
        self.assertIn("Response verify OK", p.stdout + p.stderr)
        self.assertIn(": good", p.stdout + p.stderr)
        self.assertIn(alg_id(alg, True), staple)
        row, = self.d.wait_rows(1)
        self.assertEqual((row["hash_alg"], row["hash_params"]), (alg, "null"))
        p = self.ctl("refresh", leaf.serial)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(fwd.count, 2)
        row, = self.d.wait_rows(1)
        self.assertEqual(row["hash_alg"], alg)
        self.assertIn(alg_id(alg, True), bytes(row["request_der"]))
        self.openssl_ask(leaf, alg)
        self.assertEqual(fwd.count, 2)

    def test_certid_hash_sha384_for_submissions(self):
        self.certid_hash_for_submissions("sha384", "5401")

    def test_certid_hash_sha512_for_submissions(self):
        self.certid_hash_for_submissions("sha512", "5402")

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
