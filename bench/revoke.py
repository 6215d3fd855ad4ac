#!/usr/bin/env python3
"""Helpers of bench/revoke.sh (stdlib + python3-cryptography).

  revoke.py crl DIR OUT [SERIAL...]   a CRL of DIR/root (DIR/root.key signs) listing the hex
                                       SERIALs, thisUpdate now, nextUpdate in a day, into OUT
  revoke.py crlrow DB CRL URL          stores CRL as the root's CRL held (table crl), so the
                                       daemon follows URL from its start
  revoke.py serve DIR CRLPORT HOOKPORT serves DIR/ca.crl at /ca.crl and appends each webhook
                                       POST to /hook to DIR/hooks.jsonl with its arrival time
  revoke.py measure DIR PORT CERT SERIAL [MASS]
                                       publishes a CRL listing SERIAL and times until
                                       POST /v1/staple CERT stops answering good, and until
                                       the webhook has cert_withdrawn and cert_revoked
"""
import datetime
import hashlib
import http.client
import http.server
import json
import os
import sqlite3
import sys
import threading
import time
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


warnings.filterwarnings("ignore")    # naive datetimes, as both python3-cryptography versions take


def make_crl(d, serials):
    root = x509.load_pem_x509_certificate(open(f"{d}/root.pem", "rb").read())
    key = serialization.load_pem_private_key(open(f"{d}/root.key", "rb").read(), None)
    now = datetime.datetime.utcnow().replace(microsecond=0)
    b = (x509.CertificateRevocationListBuilder().issuer_name(root.subject)
         .last_update(now).next_update(now + datetime.timedelta(days=1)))
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(int(s, 16))
                                      .revocation_date(now).build())
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def crlrow(db, crl_path, url):
    crl = x509.load_der_x509_crl(open(crl_path, "rb").read())
    con = sqlite3.connect(db)
    name_hash, key_hash = con.execute("SELECT name_hash, key_hash FROM issuer LIMIT 1").fetchone()
    with con:
        con.execute("INSERT OR REPLACE INTO crl (issuer_name_hash, issuer_key_hash, url, "
                    "this_update, next_update, fetched_at, crl_der) VALUES (?,?,?,?,?,?,?)",
                    (name_hash, key_hash, url, int(crl.last_update.timestamp()),
                     int(crl.next_update.timestamp()), int(time.time()),
                     open(crl_path, "rb").read()))


def serve(d, crl_port, hook_port):
    lock = threading.Lock()

    class Crl(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = open(f"{d}/ca.crl", "rb").read()
            etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Hook(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock, open(f"{d}/hooks.jsonl", "a") as f:
                f.write(json.dumps({"at": time.time(), "event": json.loads(body)}) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    for cls, port in ((Crl, crl_port), (Hook, hook_port)):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", port), cls)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    while True:
        time.sleep(3600)


def staple_status(port, pem, timeout=10):
    """The status POST /v1/staple answers for pem; "waiting" when no answer came within
    timeout (a withdrawn staple's request waits for the OCSP refetch: it is not answered
    good)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/v1/staple", body=pem,
                  headers={"Content-Type": "application/x-pem-file"})
        r = c.getresponse()
        body = r.read()
    except TimeoutError:
        return "waiting"
    finally:
        c.close()
    if r.status != 200:
        return "http %d" % r.status
    return ocsp.load_der_ocsp_response(body).certificate_status.name.lower()


def hook_time(d, type_):
    try:
        for line in open(f"{d}/hooks.jsonl"):
            h = json.loads(line)
            if h["event"]["type"] == "io.staplerd." + type_:
                return h["at"]
    except FileNotFoundError:
        pass
    return None


def hook_count(d):
    try:
        return sum(1 for _ in open(f"{d}/hooks.jsonl"))
    except FileNotFoundError:
        return 0


def hook_last(d):
    try:
        return max(json.loads(line)["at"] for line in open(f"{d}/hooks.jsonl"))
    except (FileNotFoundError, ValueError):
        return None


def measure(d, port, cert, serial, mass=0):
    pem = open(cert, "rb").read()
    assert staple_status(port, pem) == "good"
    # The fleet's serials (bench/rows.py from 0x1000000000), every (N/mass)th one.
    fleet = ["%X" % (0x1000000000 + i * 7) for i in range(mass)]
    crl = make_crl(f"{d}/pki", [serial] + fleet)
    tmp = f"{d}/ca.crl.tmp"
    open(tmp, "wb").write(crl)
    t0 = time.time()
    os.replace(tmp, f"{d}/ca.crl")
    first_bad = revoked = None
    while time.time() - t0 < 120 and revoked is None:
        sent = time.time()
        st = staple_status(port, pem, timeout=0.2)
        if st != "good" and first_bad is None:
            first_bad = (sent, st)
        if st == "revoked":
            revoked = time.time()
        time.sleep(0.005)
    deadline = time.time() + 600
    while time.time() < deadline and (hook_time(d, "cert_withdrawn") is None or
                                      hook_time(d, "cert_revoked") is None or
                                      hook_count(d) < 2 * mass + 2):
        time.sleep(0.05)
    last = hook_last(d)
    ms = lambda t: "%.0f ms" % ((t - t0) * 1000) if t else "never"
    print("CRL published -> /v1/staple stops answering good: %s (first request not answered "
          "good, sent then: %s)"
          % (ms(first_bad[0] if first_bad else None), first_bad[1] if first_bad else "-"))
    print("CRL published -> /v1/staple answers revoked:      %s" % ms(revoked))
    print("CRL published -> webhook has cert_withdrawn:      %s" % ms(hook_time(d, "cert_withdrawn")))
    print("CRL published -> webhook has cert_revoked:        %s" % ms(hook_time(d, "cert_revoked")))
    print("CRL published -> webhook has every event:         %s" % ms(last))


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "crl":
        open(a[3], "wb").write(make_crl(a[2], a[4:]))
    elif a[1] == "crlrow":
        crlrow(a[2], a[3], a[4])
    elif a[1] == "serve":
        serve(a[2], int(a[3]), int(a[4]))
    elif a[1] == "measure":
        measure(a[2], int(a[3]), a[4], a[5], int(a[6]) if len(a) > 6 else 0)
    else:
        sys.exit(__doc__)
