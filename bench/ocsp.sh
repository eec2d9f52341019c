#!/usr/bin/env bash
# bench/ocsp: OCSP responses/s for a CA with N issued certificates (wrk, 20 s,
# cached nonce-less GET and POST), next to two peers measured in the same run:
#  - `openssl ocsp` (index responder) answering the same request for the same
#    certificate;
#  - `cfssl ocspserve` serving a pre-signed response (RFC 5019 style, like our
#    cache) for a leaf of the same shape issued by a cfssl EC CA.
. "$(dirname "$0")/lib.sh"
N=${N:-100000}
DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
start_daemon
api POST /cas '{"id":"root","type":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=OCSP Bench Root"}' >/dev/null
api POST /cas '{"id":"iss","type":"subord","parentId":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=OCSP Bench Issuing","enableOcsp":true,"profiles":["privatessl-tls-server"]}' >/dev/null
api GET /cas/iss/certificate > "$WORK/iss.pem"
api GET /cas/root/certificate > "$WORK/root.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ee.key" \
    -subj "/CN=ocsp.example.com" -out "$WORK/ee.csr" 2>/dev/null
/usr/bin/python3 -c 'import json,sys; json.dump({"profileId":"privatessl-tls-server","csr":open(sys.argv[1]).read()}, open(sys.argv[2],"w"))' \
    "$WORK/ee.csr" "$WORK/req.json"
# Fill the CA with N certificates (through the API: the same path clients use).
{ echo "local f = io.open(\"$WORK/req.json\"); wrk.body = f:read(\"*a\"); f:close()"; echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/json"'; echo "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\""
  echo "local n = 0"; echo "request = function() n = n + 1; return wrk.format() end"; } > "$WORK/fill.lua"
echo "filling the CA with $N certificates..." >&2
while :; do
  have=$(api GET /inventory | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["certificates"]["issued"])')
  [ "$have" -ge "$N" ] && break
  wrk -t2 -c32 -d5s -s "$WORK/fill.lua" "$API/cas/iss/certificates" >/dev/null
done
api POST /cas/iss/certificates "$(cat "$WORK/req.json")" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["certificate"])' > "$WORK/ee.pem"
openssl ocsp -issuer "$WORK/iss.pem" -cert "$WORK/ee.pem" -no_nonce -reqout "$WORK/req.der" 2>/dev/null
B64=$(/usr/bin/python3 -c 'import base64,sys,urllib.parse; print(urllib.parse.quote(base64.b64encode(open(sys.argv[1],"rb").read()).decode(), safe=""))' "$WORK/req.der")
{ echo "local f = io.open(\"$WORK/req.der\", \"rb\"); wrk.body = f:read(\"*a\"); f:close()"; echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/ocsp-request"'; } > "$WORK/ocsp.lua"
curl -sf "$BASE/ocsp/bench/iss/$B64" -o /dev/null
GET_OUT=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$BASE/ocsp/bench/iss/$B64")
POST_OUT=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/ocsp.lua" "$BASE/ocsp/bench/iss")
GET_RPS=$(echo "$GET_OUT" | wrk_rps); POST_RPS=$(echo "$POST_OUT" | wrk_rps)
GET_P99=$(echo "$GET_OUT" | awk '$1=="99%" {print $2}'); POST_P99=$(echo "$POST_OUT" | awk '$1=="99%" {print $2}')
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true

# Peer: openssl ocsp as an index responder for the same CA certificate,
# signing with a key of its own (its responder model), N index entries.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/peer.key" -subj "/CN=peer" \
    -days 30 -out "$WORK/peer.pem" 2>/dev/null
SERIAL=$(openssl x509 -in "$WORK/ee.pem" -noout -serial | cut -d= -f2)
/usr/bin/python3 - "$WORK/index.txt" "$N" "$SERIAL" <<'PY'
import os, sys
path, n, serial = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    for i in range(n - 1):
        f.write(f"V\t301231235959Z\t\t{os.urandom(16).hex().upper()}\tunknown\t/CN=x{i}\n")
    f.write(f"V\t301231235959Z\t\t{serial}\tunknown\t/CN=ocsp.example.com\n")
PY
PPORT=$(free_port)
# openssl ocsp (3.0) takes a bare port and serves one request per connection
# (HTTP/1.0), which wrk cannot drive: bench/http_load.py opens a connection
# per request with 64 concurrent workers instead.
openssl ocsp -index "$WORK/index.txt" -port "$PPORT" -rsigner "$WORK/peer.pem" -rkey "$WORK/peer.key" \
    -CA "$WORK/iss.pem" -nrequest 100000000 >/dev/null 2>&1 &
PPID_=$!; PIDS+=("$PPID_")
for _ in $(seq 200); do curl -s -o /dev/null --data-binary @"$WORK/req.der" -H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$PPORT/" && break; sleep 0.1; done
PEER_RPS=$(/usr/bin/python3 "$(dirname "$0")/http_load.py" 127.0.0.1 "$PPORT" / application/ocsp-request "$WORK/req.der" "$CONNS" "$DURATION" | awk '{print $1}')
kill "$PPID_"; wait "$PPID_" 2>/dev/null || true

# Peer: cfssl ocspserve. cfssl answers from a file of pre-signed responses
# (keyed by serial), so its CA, responder and leaf are its own: an EC P-256
# CA, a delegated responder certificate (ocsp signing) and a P-256 leaf
# CN=ocsp.example.com like ours; one "good" response signed by ocspsign.
CF="$WORK/cfssl"; mkdir -p "$CF"
cat > "$CF/config.json" <<'JSON'
{"signing": {"default": {"expiry": "720h"}, "profiles": {
  "ocsp":   {"usages": ["digital signature", "ocsp signing"], "expiry": "720h"},
  "server": {"usages": ["digital signature", "key encipherment", "server auth"], "expiry": "720h"}}}}
JSON
echo '{"CN":"cfssl OCSP Bench CA","key":{"algo":"ecdsa","size":256}}' > "$CF/ca.json"
echo '{"CN":"cfssl OCSP Bench Responder","key":{"algo":"ecdsa","size":256}}' > "$CF/responder.json"
echo '{"CN":"ocsp.example.com","hosts":["ocsp.example.com"],"key":{"algo":"ecdsa","size":256}}' > "$CF/leaf.json"
(cd "$CF" && cfssl gencert -initca ca.json 2>/dev/null | cfssljson -bare cfsslca \
   && cfssl gencert -ca cfsslca.pem -ca-key cfsslca-key.pem -config config.json -profile ocsp responder.json 2>/dev/null \
      | cfssljson -bare responder \
   && cfssl gencert -ca cfsslca.pem -ca-key cfsslca-key.pem -config config.json -profile server leaf.json 2>/dev/null \
      | cfssljson -bare leaf)
cfssl ocspsign -ca "$CF/cfsslca.pem" -responder "$CF/responder.pem" -responder-key "$CF/responder-key.pem" \
    -cert "$CF/leaf.pem" -status good -loglevel 5 \
  | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ocspResponse"])' > "$CF/responses.txt"
openssl ocsp -issuer "$CF/cfsslca.pem" -cert "$CF/leaf.pem" -no_nonce -reqout "$CF/req.der" >/dev/null 2>&1
CF_B64=$(/usr/bin/python3 -c 'import base64,sys,urllib.parse; print(urllib.parse.quote(base64.b64encode(open(sys.argv[1],"rb").read()).decode(), safe=""))' "$CF/req.der")
{ echo "local f = io.open(\"$CF/req.der\", \"rb\"); wrk.body = f:read(\"*a\"); f:close()"; echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/ocsp-request"'; } > "$CF/ocsp.lua"
CPORT=$(free_port)
cfssl ocspserve -address 127.0.0.1 -port "$CPORT" -responses "$CF/responses.txt" -loglevel 5 >/dev/null 2>&1 &
CPID=$!; PIDS+=("$CPID")
for _ in $(seq 100); do
  curl -s -o /dev/null --data-binary @"$CF/req.der" -H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$CPORT/" && break
  sleep 0.1
done
# Sanity: the POST answer must be a successful response with status good.
curl -sf --data-binary @"$CF/req.der" -H 'Content-Type: application/ocsp-request' "http://127.0.0.1:$CPORT/" -o "$CF/resp.der"
openssl ocsp -respin "$CF/resp.der" -resp_text -noverify 2>/dev/null | grep -q 'Cert Status: good' \
  || { echo "cfssl ocspserve did not answer 'good'" >&2; exit 1; }
wrk_ok() { # wrk output on stdin -> requests/s, or n/a when any answer was not 2xx
  /usr/bin/python3 -c 'import re,sys; t=sys.stdin.read(); m=re.search(r"Requests/sec:\s+([0-9.]+)", t); print("n/a" if "Non-2xx" in t or not m else f"{float(m.group(1)):.0f}")'
}
CF_POST_OUT=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$CF/ocsp.lua" "http://127.0.0.1:$CPORT/")
CF_POST=$(echo "$CF_POST_OUT" | wrk_ok); CF_POST_P99=$(echo "$CF_POST_OUT" | awk '$1=="99%" {print $2}')
# GET: the Debian build (cfssl 1.2.0, 2016 snapshot) decodes the whole URL
# path including its leading '/', so every GET is a 400; measured only when
# the installed cfssl answers it.
CF_GET=n/a; CF_GET_P99=-
if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CPORT/$CF_B64")" = 200 ]; then
  CF_GET_OUT=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$CPORT/$CF_B64")
  CF_GET=$(echo "$CF_GET_OUT" | wrk_ok); CF_GET_P99=$(echo "$CF_GET_OUT" | awk '$1=="99%" {print $2}')
fi
kill "$CPID"; wait "$CPID" 2>/dev/null || true
num_or_ratio() { case "$2" in n/a) echo n/a;; *) ratio "$1" "$2";; esac; }

echo "bench/ocsp (${DURATION}s each, wrk -t2 -c$CONNS, CA with $N certificates)"
printf "  pkiaas GET  (cached): %9.0f responses/s  p99 %s\n" "$GET_RPS" "$GET_P99"
printf "  pkiaas POST (cached): %9.0f responses/s  p99 %s\n" "$POST_RPS" "$POST_P99"
printf "  openssl ocsp (index): %9.0f responses/s   ratio GET %s, POST %s\n" "$PEER_RPS" "$(ratio "$GET_RPS" "$PEER_RPS")" "$(ratio "$POST_RPS" "$PEER_RPS")"
printf "  cfssl ocspserve POST:  %9s responses/s  p99 %s   ratio pkiaas/cfssl %s\n" "$CF_POST" "$CF_POST_P99" "$(num_or_ratio "$POST_RPS" "$CF_POST")"
printf "  cfssl ocspserve GET:   %9s responses/s  p99 %s   ratio pkiaas/cfssl %s\n" "$CF_GET" "$CF_GET_P99" "$(num_or_ratio "$GET_RPS" "$CF_GET")"
