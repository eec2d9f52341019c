#!/usr/bin/env bash
# bench/acme: ACME orders per second, 200 orders (N) by 4 concurrent lego
# clients (CLIENTS) with http-01, against pkiaas and against Debian's pebble
# measured in the same run with the same clients. Both servers resolve names
# through one pebble-challtestsrv (DNS) and validate http-01 against one
# webroot served on the same port; pebble runs without its artificial
# validation sleep, nonce rejection and authorization reuse, so both do the
# same work per order (new authorization, validation, issuance).
#   bench/acme.sh [BUILD_DIR]
. "$(dirname "$0")/lib.sh"
N=${N:-200}
CLIENTS=${CLIENTS:-4}
command -v lego >/dev/null && command -v pebble >/dev/null || { echo "lego/pebble missing (scripts/deps.sh)"; exit 1; }

DNS_PORT=$(free_port); MGMT_PORT=$(free_port); HTTP01_PORT=$(free_port)
pebble-challtestsrv -dns01 127.0.0.1:$DNS_PORT -http01 "" -https01 "" -tlsalpn01 "" \
    -management 127.0.0.1:$MGMT_PORT -defaultIPv6 "" >/dev/null 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/webroot"
/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$WORK/webroot" "$HTTP01_PORT" >/dev/null 2>&1 &
PIDS+=($!)

# -- pkiaas ---------------------------------------------------------------
PKIAAS_CONFIG="$WORK/bench.conf"
printf 'rate_limit_standard = 0\nrate_limit_premium = 0\nacme_resolver = 127.0.0.1:%s\nacme_http01_port = %s\n' \
    "$DNS_PORT" "$HTTP01_PORT" > "$PKIAAS_CONFIG"
start_daemon
api POST /cas '{"id":"root","type":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=ACME Bench Root"}' >/dev/null
api POST /cas '{"id":"iss","type":"subord","parentId":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=ACME Bench Issuing","profiles":["privatessl-tls-server"]}' >/dev/null
api POST /protocols '{"id":"bench","type":"acme","caId":"iss","profileId":"privatessl-tls-server","eabRequired":false}' >/dev/null
PKIAAS_DIR="https://127.0.0.1:$HTTPS_PORT/acme/bench/bench/directory"

# -- pebble ---------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$WORK/pca.key" -out "$WORK/pca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$WORK/peb.key" -out "$WORK/peb.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$WORK/peb.ext"
openssl x509 -req -in "$WORK/peb.csr" -CA "$WORK/pca.pem" -CAkey "$WORK/pca.key" -CAcreateserial -days 2 \
    -extfile "$WORK/peb.ext" -out "$WORK/peb.pem" 2>/dev/null
PEB_PORT=$(free_port); PEB_MGMT=$(free_port)
cat > "$WORK/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$PEB_PORT", "managementListenAddress": "127.0.0.1:$PEB_MGMT",
  "certificate": "$WORK/peb.pem", "privateKey": "$WORK/peb.key", "httpPort": $HTTP01_PORT, "tlsPort": 5001,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$WORK/pebble.json" -dnsserver 127.0.0.1:$DNS_PORT >"$WORK/pebble.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$PEB_PORT/dir" >/dev/null && break; sleep 0.1; done
PEBBLE_DIR="https://127.0.0.1:$PEB_PORT/dir"

# N orders by CLIENTS concurrent lego loops (one account per client, reused).
run_orders() { # NAME DIRECTORY CA_BUNDLE -> orders/s on stdout
  local name=$1 dir=$2 ca=$3 per=$((N / CLIENTS))
  local t0 t1
  # register the accounts first (not timed)
  for c in $(seq "$CLIENTS"); do
    LEGO_CA_CERTIFICATES=$ca lego --server "$dir" --email "c$c@example.com" --accept-tos \
        --path "$WORK/$name-$c" --domains "warm-$c.$name.bench.test" --http --http.webroot "$WORK/webroot" \
        --key-type ec256 run >/dev/null 2>"$WORK/$name-warm-$c.log" || { cat "$WORK/$name-warm-$c.log" >&2; return 1; }
  done
  t0=$(date +%s.%N)
  local loops=()
  for c in $(seq "$CLIENTS"); do
    (
      for i in $(seq "$per"); do
        LEGO_CA_CERTIFICATES=$ca lego --server "$dir" --email "c$c@example.com" --accept-tos \
            --path "$WORK/$name-$c" --domains "o$i-c$c.$name.bench.test" --http --http.webroot "$WORK/webroot" \
            --key-type ec256 run >/dev/null 2>>"$WORK/$name-$c.log" || exit 1
      done
    ) &
    loops+=($!)
  done
  local fail=0
  for p in "${loops[@]}"; do wait "$p" || fail=1; done
  t1=$(date +%s.%N)
  [ $fail = 0 ] || { tail -5 "$WORK/$name-"*.log >&2; return 1; }
  /usr/bin/python3 -c "print(f'{$per*$CLIENTS/($t1-$t0):.1f}')"
}

P_RATE=$(run_orders pkiaas "$PKIAAS_DIR" "$WORK/data/service-ca.pem")
B_RATE=$(run_orders pebble "$PEBBLE_DIR" "$WORK/pca.pem")
echo "acme: $N orders (http-01, new authorization each), $CLIENTS concurrent lego clients"
echo "  pkiaas  $P_RATE orders/s"
echo "  pebble  $B_RATE orders/s"
echo "  ratio   $(ratio "$P_RATE" "$B_RATE")"
