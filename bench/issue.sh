#!/usr/bin/env bash
# bench/issue: certificates/s through the admin API (2 client threads,
# every certificate durably committed before it is returned) for a P-256
# and an RSA-2048 issuing CA, on the SQLite store and on PostgreSQL (a
# private cluster on the same machine), next to `cfssl serve` signing the
# same CSR with a CA of the same key type (cfssl stores nothing).
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ee.key" \
    -subj "/CN=bench.example.com" -out "$WORK/ee.csr" 2>/dev/null
/usr/bin/python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
csr = open(f"{w}/ee.csr").read()
json.dump({"profileId": "privatessl-tls-server", "csr": csr,
           "subjectAltNames": [{"type": "dNSName", "value": "bench.example.com"}]}, open(f"{w}/req.json", "w"))
json.dump({"certificate_request": csr, "hosts": ["bench.example.com"]}, open(f"{w}/cfssl.json", "w"))
PY
post_lua() { # FILE HEADER...
  { echo "local f = io.open(\"$1\"); wrk.body = f:read(\"*a\"); f:close()"; echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    [ -n "${2:-}" ] && echo "wrk.headers[\"Authorization\"] = \"$2\""; } > "$WORK/post.lua"
}

# One pkiaas run on the store in $STORE (empty: SQLite): sets EC, RSA, ISSUED.
pkiaas_rps() {
  unset PKIAAS_CONFIG
  start_daemon
  api POST /cas '{"id":"root","type":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=Bench Root"}' >/dev/null
  api POST /cas '{"id":"iss-ec","type":"subord","parentId":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=Bench EC","profiles":["privatessl-tls-server"]}' >/dev/null
  api POST /cas '{"id":"iss-rsa","type":"subord","parentId":"root","signingKeyDetails":"RSA-2048+PKCS15-SHA256","subject":"CN=Bench RSA","profiles":["privatessl-tls-server"]}' >/dev/null
  post_lua "$WORK/req.json" "Bearer $TOKEN"
  # Warm up (CA caches, connections), then measure.
  wrk -t2 -c"$CONNS" -d2s -s "$WORK/post.lua" "$API/cas/iss-ec/certificates" >/dev/null
  EC=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "$API/cas/iss-ec/certificates" | wrk_rps)
  RSA=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "$API/cas/iss-rsa/certificates" | wrk_rps)
  ISSUED=$(api GET /inventory | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["certificates"]["issued"])')
  kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
}

STORE="" DATA="$WORK/data" pkiaas_rps
SQ_EC=$EC SQ_RSA=$RSA SQ_ISSUED=$ISSUED
# The same on PostgreSQL (a private cluster on this machine; BENCH_PG=0 skips it).
PG_EC=0 PG_RSA=0 PG_ISSUED=0
if [ "${BENCH_PG:-1}" != 0 ]; then
  start_pg bench_issue
  STORE="$PG_DB_URL" DATA="$WORK/data-pg" pkiaas_rps
  PG_EC=$EC PG_RSA=$RSA PG_ISSUED=$ISSUED
fi

# Peer: cfssl serve with an EC and an RSA CA.
cfssl_rps() { # keyalgo keysize
  local d="$WORK/cfssl-$1"; mkdir -p "$d"
  echo "{\"CN\":\"cfssl bench $1\",\"key\":{\"algo\":\"$1\",\"size\":$2}}" > "$d/csr.json"
  (cd "$d" && cfssl gencert -initca csr.json 2>/dev/null | cfssljson -bare ca)
  local port; port=$(free_port)
  cfssl serve -address 127.0.0.1 -port "$port" -ca "$d/ca.pem" -ca-key "$d/ca-key.pem" -loglevel 5 >/dev/null 2>&1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/api/v1/cfssl/health" >/dev/null 2>&1 && break; sleep 0.1; done
  post_lua "$WORK/cfssl.json"
  wrk -t2 -c"$CONNS" -d2s -s "$WORK/post.lua" "http://127.0.0.1:$port/api/v1/cfssl/sign" >/dev/null
  wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$port/api/v1/cfssl/sign" | wrk_rps
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
CF_EC=$(cfssl_rps ecdsa 256)
CF_RSA=$(cfssl_rps rsa 2048)
echo "bench/issue (${DURATION}s each, wrk -t2 -c$CONNS, durable commits; $SQ_ISSUED certificates stored in SQLite, $PG_ISSUED in PostgreSQL)"
echo "                       pkiaas/SQLite   pkiaas/PostgreSQL   cfssl serve   SQLite:cfssl"
printf "  P-256 issuing CA:    %10.0f/s   %14.0f/s   %9.0f/s   %s\n" "$SQ_EC" "$PG_EC" "$CF_EC" "$(ratio "$SQ_EC" "$CF_EC")"
printf "  RSA-2048 issuing CA: %10.0f/s   %14.0f/s   %9.0f/s   %s\n" "$SQ_RSA" "$PG_RSA" "$CF_RSA" "$(ratio "$SQ_RSA" "$CF_RSA")"

# The crypto ceiling of this machine, measured in the same run: every
# certificate costs one ECDSA P-256 verification (the CSR's proof of
# possession) and one signature by the CA key. With both cores doing nothing
# else (no HTTP, no JSON, no store, no load generator), certificates/s can
# be at most 1 / (1/signs + 1/verifies) at `openssl speed -multi 2` rates.
SPEED=$(openssl speed -mr -multi 2 -seconds "${SPEED_SECONDS:-3}" ecdsap256 rsa2048 2>/dev/null | grep -E '^\+F[24]:')
/usr/bin/python3 - "$SPEED" "$SQ_EC" "$SQ_RSA" "$CF_EC" "$CF_RSA" <<'PY'
import sys
rows = {l.split(":")[0]: l.split(":") for l in sys.argv[1].split()}
rsa_sign = float(rows["+F2"][3]); ec_sign, ec_verify = float(rows["+F4"][3]), float(rows["+F4"][4])
sq_ec, sq_rsa, cf_ec, cf_rsa = map(float, sys.argv[2:6])
ceil_ec = 1 / (1 / ec_sign + 1 / ec_verify)
ceil_rsa = 1 / (1 / rsa_sign + 1 / ec_verify)
print(f"crypto ceiling on this machine (openssl speed -multi 2: P-256 sign {ec_sign:,.0f}/s, verify {ec_verify:,.0f}/s; "
      f"RSA-2048 sign {rsa_sign:,.0f}/s)")
print(f"  P-256 issuing CA:    {ceil_ec:8,.0f}/s   pkiaas {sq_ec / ceil_ec:5.1%} of it, cfssl {cf_ec / ceil_ec:5.1%}")
print(f"  RSA-2048 issuing CA: {ceil_rsa:8,.0f}/s   pkiaas {sq_rsa / ceil_rsa:5.1%} of it, cfssl {cf_rsa / ceil_rsa:5.1%}")
PY
