#!/usr/bin/env bash
# bench/issue: certificates/s through the admin API (2 client threads,
# every certificate durably committed before it is returned) for a P-256
# and an RSA-2048 issuing CA, on the SQLite store and on PostgreSQL (a
# private cluster on the same machine), next to `cfssl serve` signing the
# same CSR with a CA of the same key type (cfssl stores nothing).
#
# The machines this runs on are shared and their speed drifts by tens of
# percent within a minute, so pkiaas/SQLite and cfssl are measured in turn
# (ROUNDS rounds of: pkiaas P-256, cfssl P-256, pkiaas RSA, cfssl RSA), and
# the ratio printed is the median of the rounds' own ratios.
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
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
lua() { # NAME FILE [AUTHORIZATION]: a wrk script posting FILE
  { echo "local f = io.open(\"$2\"); wrk.body = f:read(\"*a\"); f:close()"; echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    if [ -n "${3:-}" ]; then echo "wrk.headers[\"Authorization\"] = \"$3\""; fi; } > "$WORK/$1.lua"
}
run_wrk() { # NAME URL SECONDS -> requests/s
  wrk -t2 -c"$CONNS" -d"$3s" -s "$WORK/$1.lua" "$2" | wrk_rps
}

# pkiaas with a P-256 and an RSA-2048 issuing CA on the store in $STORE
# (empty: SQLite); sets PK_EC_URL, PK_RSA_URL.
pkiaas_up() {
  unset PKIAAS_CONFIG
  start_daemon
  api POST /cas '{"id":"root","type":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=Bench Root"}' >/dev/null
  api POST /cas '{"id":"iss-ec","type":"subord","parentId":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=Bench EC","profiles":["privatessl-tls-server"]}' >/dev/null
  api POST /cas '{"id":"iss-rsa","type":"subord","parentId":"root","signingKeyDetails":"RSA-2048+PKCS15-SHA256","subject":"CN=Bench RSA","profiles":["privatessl-tls-server"]}' >/dev/null
  lua pkiaas "$WORK/req.json" "Bearer $TOKEN"
  PK_EC_URL="$API/cas/iss-ec/certificates" PK_RSA_URL="$API/cas/iss-rsa/certificates"
}
pkiaas_issued() { api GET /inventory | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["certificates"]["issued"])'; }

# cfssl serve with a CA of key type $1/$2; sets CF_URL to its sign URL (not
# in a subshell: its PID must reach PIDS, so cleanup stops it).
cfssl_up() { # keyalgo keysize
  local d="$WORK/cfssl-$1"; mkdir -p "$d"
  echo "{\"CN\":\"cfssl bench $1\",\"key\":{\"algo\":\"$1\",\"size\":$2}}" > "$d/csr.json"
  (cd "$d" && cfssl gencert -initca csr.json 2>/dev/null | cfssljson -bare ca)
  local port; port=$(free_port)
  cfssl serve -address 127.0.0.1 -port "$port" -ca "$d/ca.pem" -ca-key "$d/ca-key.pem" -loglevel 5 >/dev/null 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/api/v1/cfssl/health" >/dev/null 2>&1 && break; sleep 0.1; done
  CF_URL="http://127.0.0.1:$port/api/v1/cfssl/sign"
}

# SQLite and cfssl, in turn.
DATA="$WORK/data" STORE="" pkiaas_up
SQ_PID=$DAEMON_PID
cfssl_up ecdsa 256; CF_EC_URL=$CF_URL
cfssl_up rsa 2048; CF_RSA_URL=$CF_URL
lua cfssl "$WORK/cfssl.json"
for u in "$PK_EC_URL" "$PK_RSA_URL"; do run_wrk pkiaas "$u" 2 >/dev/null; done # warm-up: CA caches, connections
for u in "$CF_EC_URL" "$CF_RSA_URL"; do run_wrk cfssl "$u" 2 >/dev/null; done
ROWS=""
for r in $(seq "$ROUNDS"); do
  a=$(run_wrk pkiaas "$PK_EC_URL" "$DURATION"); b=$(run_wrk cfssl "$CF_EC_URL" "$DURATION")
  c=$(run_wrk pkiaas "$PK_RSA_URL" "$DURATION"); d=$(run_wrk cfssl "$CF_RSA_URL" "$DURATION")
  ROWS="$ROWS $a,$b,$c,$d"
done
SQ_ISSUED=$(pkiaas_issued)
kill "$SQ_PID"; wait "$SQ_PID" 2>/dev/null || true

# The same on PostgreSQL (a private cluster on this machine; BENCH_PG=0
# skips it): one run each, after the paired rounds.
PG_EC=0 PG_RSA=0 PG_ISSUED=0
if [ "${BENCH_PG:-1}" != 0 ]; then
  start_pg bench_issue
  DATA="$WORK/data-pg" STORE="$PG_DB_URL" pkiaas_up
  for u in "$PK_EC_URL" "$PK_RSA_URL"; do run_wrk pkiaas "$u" 2 >/dev/null; done
  PG_EC=$(run_wrk pkiaas "$PK_EC_URL" "$DURATION"); PG_RSA=$(run_wrk pkiaas "$PK_RSA_URL" "$DURATION")
  PG_ISSUED=$(pkiaas_issued)
  kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
fi

# The crypto ceiling of this machine, measured in the same run: every
# certificate costs one ECDSA P-256 verification (the CSR's proof of
# possession) and one signature by the CA key. With both cores doing nothing
# else (no HTTP, no JSON, no store, no load generator), certificates/s can
# be at most 1 / (1/signs + 1/verifies) at `openssl speed -multi 2` rates.
SPEED=$(openssl speed -mr -multi 2 -seconds "${SPEED_SECONDS:-3}" ecdsap256 rsa2048 2>/dev/null | grep -E '^\+F[24]:')
/usr/bin/python3 - "$ROWS" "$PG_EC" "$PG_RSA" "$SPEED" "$DURATION" "$CONNS" "$SQ_ISSUED" "$PG_ISSUED" <<'PY'
import statistics as st, sys
rows = [list(map(float, r.split(","))) for r in sys.argv[1].split()]
pg_ec, pg_rsa = float(sys.argv[2]), float(sys.argv[3])
speed = {l.split(":")[0]: l.split(":") for l in sys.argv[4].split()}
dur, conns, sq_n, pg_n = sys.argv[5:9]
med = lambda i: st.median(r[i] for r in rows)
ratio = lambda i, j: st.median(r[i] / r[j] for r in rows if r[j])
rng = lambda i: f"{min(r[i] for r in rows):,.0f}-{max(r[i] for r in rows):,.0f}"
print(f"bench/issue ({len(rows)} rounds of {dur}s runs in turn, wrk -t2 -c{conns}, durable commits; "
      f"{sq_n} certificates stored in SQLite, {pg_n} in PostgreSQL)")
print("                       pkiaas/SQLite (range)        cfssl serve (range)      SQLite:cfssl   pkiaas/PostgreSQL")
for name, a, b in (("P-256 issuing CA:   ", 0, 1), ("RSA-2048 issuing CA:", 2, 3)):
    pg = pg_ec if a == 0 else pg_rsa
    print(f"  {name} {med(a):8,.0f}/s ({rng(a):>13})  {med(b):8,.0f}/s ({rng(b):>13})   {ratio(a, b):5.2f}x   {pg:12,.0f}/s")
rsa_sign = float(speed["+F2"][3]); ec_sign, ec_verify = float(speed["+F4"][3]), float(speed["+F4"][4])
ceil_ec = 1 / (1 / ec_sign + 1 / ec_verify)
ceil_rsa = 1 / (1 / rsa_sign + 1 / ec_verify)
print(f"crypto ceiling, measured after the rounds (openssl speed -multi 2: P-256 sign {ec_sign:,.0f}/s, "
      f"verify {ec_verify:,.0f}/s; RSA-2048 sign {rsa_sign:,.0f}/s)")
print(f"  P-256 issuing CA:    {ceil_ec:8,.0f}/s   pkiaas {med(0) / ceil_ec:5.1%} of it, cfssl {med(1) / ceil_ec:5.1%}")
print(f"  RSA-2048 issuing CA: {ceil_rsa:8,.0f}/s   pkiaas {med(2) / ceil_rsa:5.1%} of it, cfssl {med(3) / ceil_rsa:5.1%}")
PY
