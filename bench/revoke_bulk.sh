#!/usr/bin/env bash
# bench/revoke_bulk: wall time of `pkiaas cert revoke-bulk` revoking N
# certificates of one issuing CA (serials listed through the API, batches of
# BATCH through POST .../revoke-batch, one CRL publication at the end), and
# the number of entries on the CRL served afterwards. Goal: N=100000 < 60 s.
#   bench/revoke_bulk.sh [BUILD_DIR]      (N, BATCH, CONNS from the environment)
. "$(dirname "$0")/lib.sh"
N=${N:-100000}
BATCH=${BATCH:-1000}
CONNS=${CONNS:-32}
PKIAAS="$BUILD/pkiaas"
start_daemon
api POST /cas '{"id":"root","type":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=Revoke Bench Root"}' >/dev/null
api POST /cas '{"id":"iss","type":"subord","parentId":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=Revoke Bench Issuing","enableCrl":true,"profiles":["privatessl-tls-server"]}' >/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ee.key" \
    -subj "/CN=revoke.example.com" -out "$WORK/ee.csr" 2>/dev/null
/usr/bin/python3 -c 'import json,sys; json.dump({"profileId":"privatessl-tls-server","csr":open(sys.argv[1]).read()}, open(sys.argv[2],"w"))' \
    "$WORK/ee.csr" "$WORK/req.json"

# Fill the CA with N certificates through the API (one CSR, reused).
{ echo "local f = io.open(\"$WORK/req.json\"); wrk.body = f:read(\"*a\"); f:close()"; echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/json"'; echo "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\""
  echo "request = function() return wrk.format() end"; } > "$WORK/fill.lua"
issued() { api GET /inventory | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["certificates"]["issued"])'; }
echo "filling the CA with $N certificates..." >&2
T0=$(date +%s.%N)
while :; do
  have=$(issued)
  [ "$have" -ge "$N" ] && break
  # a short run near the end keeps the overshoot small
  left=$((N - have)); dur=5; [ "$left" -lt 12000 ] && dur=1
  wrk -t2 -c"$CONNS" -d${dur}s -s "$WORK/fill.lua" "$API/cas/iss/certificates" >/dev/null
done
FILL_S=$(/usr/bin/python3 -c "import time; print(f'{time.time()-$T0:.1f}')")

# Every serial of the CA, through the list endpoint (500 per page).
T0=$(date +%s.%N)
/usr/bin/python3 - "$API" "$TOKEN" "$WORK/serials.txt" <<'PY'
import json, sys, urllib.parse, urllib.request
api, token, out = sys.argv[1:4]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
cursor, n = None, 0
with open(out, "w") as f:
    while True:
        q = {"status": "issued", "limit": "500", "includeCa": "false"}
        if cursor:
            q["cursor"] = cursor
        req = urllib.request.Request(f"{api}/cas/iss/certificates?{urllib.parse.urlencode(q)}",
                                     headers={"Authorization": f"Bearer {token}"})
        body = json.load(opener.open(req))
        for c in body["certificates"]:
            f.write(c["serialNumber"] + "\n")
            n += 1
        cursor = body["nextCursor"]
        if not cursor:
            break
print(n, file=sys.stderr)
PY
LIST_S=$(/usr/bin/python3 -c "import time; print(f'{time.time()-$T0:.1f}')")
SELECTED=$(wc -l < "$WORK/serials.txt")

T0=$(date +%s.%N)
"$PKIAAS" --url "$BASE" --token "$TOKEN" --partition bench cert revoke-bulk --ca iss --serials "$WORK/serials.txt" \
    --reason superseded --publish-now --batch "$BATCH" --report "$WORK/report.csv" --yes > "$WORK/summary.txt"
REVOKE_S=$(/usr/bin/python3 -c "import time; print(f'{time.time()-$T0:.1f}')")

curl -sf "$BASE/crl/bench/iss/crl.crl" -o "$WORK/crl.der"
CRL_ENTRIES=$(/usr/bin/python3 -c 'import sys; from cryptography import x509; print(len(x509.load_der_x509_crl(open(sys.argv[1],"rb").read())))' "$WORK/crl.der")
CRL_BYTES=$(stat -c %s "$WORK/crl.der")
REPORT_ROWS=$(($(wc -l < "$WORK/report.csv") - 1))

# Peer: openssl ca, the usual way of revoking with stock tools: one
# `openssl ca -revoke` per certificate, then one -gencrl. PEER_N certificates
# (default 1000; its index grows per call, so the rate is measured small and
# compared per certificate).
PEER_N=${PEER_N:-1000}
mkdir -p "$WORK/ossl/certs"; cd "$WORK/ossl"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -subj "/CN=peer" -days 30 -out ca.pem 2>/dev/null
/usr/bin/python3 - ca.pem ca.key "$PEER_N" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
ca = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
cakey = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
key = ec.generate_private_key(ec.SECP256R1()).public_key()
now = datetime.datetime.utcnow()
for i in range(int(sys.argv[3])):
    c = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"r{i}.example")]))
         .issuer_name(ca.subject).public_key(key).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30)).sign(cakey, hashes.SHA256()))
    open(f"certs/{i}.pem", "wb").write(c.public_bytes(serialization.Encoding.PEM))
PY
: > index.txt; echo "unique_subject = no" > index.txt.attr; echo 1000 > crlnumber
printf '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ncertificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\ndefault_crl_days = 7\nnew_certs_dir = certs\n' > ca.cnf
T0=$(date +%s.%N)
for i in $(seq 0 $((PEER_N - 1))); do
  openssl ca -config ca.cnf -revoke "certs/$i.pem" -crl_reason superseded 2>/dev/null
done
openssl ca -config ca.cnf -gencrl -out peer.crl 2>/dev/null
PEER_S=$(/usr/bin/python3 -c "import time; print(f'{time.time()-$T0:.2f}')")
PEER_ENTRIES=$(openssl crl -in peer.crl -noout -text | grep -c "Serial Number:")
cd - >/dev/null
RATE=$(/usr/bin/python3 -c "print(f'{$SELECTED/max($REVOKE_S,0.01):.0f}')")
PEER_RATE=$(/usr/bin/python3 -c "print(f'{$PEER_N/max($PEER_S,0.01):.0f}')")

echo "bench/revoke_bulk (N=$N, batch $BATCH, CRL published once at the end)"
printf "  fill:   %8s s  (wrk -t2 -c%s)\n" "$FILL_S" "$CONNS"
printf "  list:   %8s s  %s serials through GET .../certificates\n" "$LIST_S" "$SELECTED"
printf "  revoke: %8s s  pkiaas cert revoke-bulk: %s  (goal < 60 s)\n" "$REVOKE_S" "$(cat "$WORK/summary.txt")"
printf "  CRL:    %8s entries, %s bytes; report rows %s\n" "$CRL_ENTRIES" "$CRL_BYTES" "$REPORT_ROWS"
printf "  rate:   %8s revocations/s incl. CRL; openssl ca (-revoke x %s + -gencrl, %s entries): %s/s  (pkiaas ratio %s)\n" \
    "$RATE" "$PEER_N" "$PEER_ENTRIES" "$PEER_RATE" "$(ratio "$RATE" "$PEER_RATE")"
