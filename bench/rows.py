#!/usr/bin/env python3
"""Bench data made without an upstream round trip per entry (stdlib + python3-cryptography).

  rows.py rows DB N BASE DUE PATHS [INDEX]
      Copies the database's one row under N serials BASE, BASE+1, ... (hex), each with its own
      request_der (so a refresh asks the upstream about that serial) and next_refresh_at = DUE;
      writes the GET path /ocsp/{base64 request} of each serial to PATHS, one a line, and with
      INDEX the `openssl ocsp` index.txt lines that make the upstream answer "good" for them.
  rows.py certs DIR N BASE PORT
      N certificates signed by DIR/root.key with AIA http://127.0.0.1:PORT/, all in one file
      DIR/certs.pem; their OCSP requests, hex, one a line, in DIR/requests.hex; DIR/index.txt
      extended so that `openssl ocsp` knows them.
"""
import base64
import datetime
import sqlite3
import sys
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID


def der(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + body


SHA1_ALG = der(0x30, der(0x06, bytes.fromhex("2b0e03021a")) + b"\x05\x00")


def request_der(name_hash, key_hash, serial):
    """An OCSPRequest with one SHA-1 CertID, no nonce, no extensions (what openssl builds)."""
    magnitude = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # keeps the sign bit clear
    certid = der(0x30, SHA1_ALG + der(0x04, name_hash) + der(0x04, key_hash) + der(0x02, magnitude))
    return der(0x30, der(0x30, der(0x30, der(0x30, certid))))


def get_path(req):
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(req).decode(), safe="")


def index_line(serial, subject):
    expiry = (datetime.datetime.utcnow() + datetime.timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
    return f"V\t{expiry}\t\t{serial:X}\tunknown\t{subject}\n"


def rows(db, n, base, due, paths, index=None):
    con = sqlite3.connect(db)
    cur = con.execute("SELECT * FROM ocsp_response LIMIT 1")
    cols = [d[0] for d in cur.description]
    tmpl = dict(zip(cols, cur.fetchone()))
    cols.remove("id")
    name_hash = bytes.fromhex(tmpl["issuer_name_hash"])
    key_hash = bytes.fromhex(tmpl["issuer_key_hash"])
    sql = f"INSERT INTO ocsp_response ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
    out = open(paths, "w")
    idx = open(index, "a") if index else None

    def gen():
        for i in range(n):
            serial = base + i
            req = request_der(name_hash, key_hash, serial)
            out.write(get_path(req) + "\n")
            if idx:
                idx.write(index_line(serial, f"/O=Bench/CN=row-{i}"))
            row = dict(tmpl, serial=f"{serial:X}", request_der=req, next_refresh_at=due)
            yield [row[c] for c in cols]

    with con:
        con.executemany(sql, gen())
    out.close()
    if idx:
        idx.close()


def certs(d, n, base, port):
    root = x509.load_pem_x509_certificate(open(f"{d}/root.pem", "rb").read())
    root_key = serialization.load_pem_private_key(open(f"{d}/root.key", "rb").read(), None)
    # One key for every leaf: the key does not matter to OCSP, and making 10,000 would dominate.
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        x509.AuthorityInformationAccessOID.OCSP,
        x509.UniformResourceIdentifier(f"http://127.0.0.1:{port}/"))])
    with open(f"{d}/certs.pem", "wb") as pem, open(f"{d}/requests.hex", "w") as reqs, \
            open(f"{d}/index.txt", "a") as idx:
        for i in range(n):
            serial = base + i
            subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, f"fill-{i}")])
            cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(root.subject)
                    .public_key(leaf_key.public_key()).serial_number(serial)
                    .not_valid_before(now - datetime.timedelta(days=1))
                    .not_valid_after(now + datetime.timedelta(days=365))
                    .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                                 False, False), critical=True)
                    .add_extension(aia, critical=False)
                    .sign(root_key, hashes.SHA256()))
            pem.write(cert.public_bytes(serialization.Encoding.PEM))
            req = ocsp.OCSPRequestBuilder().add_certificate(cert, root, hashes.SHA1()).build()
            reqs.write(req.public_bytes(serialization.Encoding.DER).hex() + "\n")
            idx.write(index_line(serial, f"/O=Bench/CN=fill-{i}"))


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "rows":
        rows(a[2], int(a[3]), int(a[4], 16), int(a[5]), a[6], a[7] if len(a) > 7 else None)
    elif a[1] == "certs":
        certs(a[2], int(a[3]), int(a[4], 16), int(a[5]))
    else:
        sys.exit(__doc__)
