#!/usr/bin/env bash
# Makes a small demo PKI in DIR for the quick start: a utility root CA, an OCSP responder
# certificate it delegates to (id-kp-OCSPSigning), two meter certificates whose AIA points at
# http://127.0.0.1:PORT/ (one good, one revoked) and the index.txt `openssl ocsp` serves from.
# Keys are made fresh every time; nothing here is meant to leave the demo directory.
set -euo pipefail
dir=${1:?usage: demo-pki.sh DIR [PORT]}
port=${2:-8888}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
exp_index() { date -u -d "$1" +%y%m%d%H%M%SZ; }

key root.key
openssl req -x509 -new -key root.key -sha256 -days 3650 -subj "/O=Demo Utility/CN=Demo Meter Root CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out root.pem 2>/dev/null

key ocsp.key
openssl req -new -key ocsp.key -subj "/O=Demo Utility/CN=Demo OCSP Responder" -out ocsp.csr 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n' > ocsp.ext
openssl x509 -req -in ocsp.csr -CA root.pem -CAkey root.key -set_serial 0x1000 -days 365 -sha256 \
  -extfile ocsp.ext -out ocsp.pem 2>/dev/null

: > index.txt
printf 'keyUsage=critical,digitalSignature\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:%s/\n' "$port" > meter.ext
for m in 1 2; do
  serial=$(printf '4D45544552%06X' "$m")   # "METER" + number
  key "meter$m.key"
  openssl req -new -key "meter$m.key" -subj "/O=Demo Utility/CN=meter-$m" -out "meter$m.csr" 2>/dev/null
  openssl x509 -req -in "meter$m.csr" -CA root.pem -CAkey root.key -set_serial "0x$serial" -days 365 \
    -sha256 -extfile meter.ext -out "meter$m.pem" 2>/dev/null
  expiry=$(exp_index "+365 days")
  if [[ $m == 2 ]]; then
    printf 'R\t%s\t%s,keyCompromise\t%s\tunknown\t/O=Demo Utility/CN=meter-%s\n' \
      "$expiry" "$(exp_index "-1 day")" "$serial" "$m" >> index.txt
  else
    printf 'V\t%s\t\t%s\tunknown\t/O=Demo Utility/CN=meter-%s\n' "$expiry" "$serial" "$m" >> index.txt
  fi
done
cp root.pem ca-bundle.pem
rm -f ./*.csr ./*.ext
