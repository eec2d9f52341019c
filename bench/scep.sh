#!/usr/bin/env bash
# bench/scep: SCEP enrolments per second, N (200) enrolments by CLIENTS (4)
# concurrent micromdm `scepclient` processes (each a new RSA-2048 key, a
# PKCSReq with a static challenge, the CertRep), against pkiaas and against
# Debian's `scepserver` (the same project's server; RSA-2048 CA) measured in
# the same run with the same clients. Both use plain HTTP on loopback.
#   bench/scep.sh [BUILD_DIR]
. "$(dirname "$0")/lib.sh"
N=${N:-200}
CLIENTS=${CLIENTS:-4}
command -v scepclient >/dev/null && command -v scepserver >/dev/null || { echo "scep package missing"; exit 1; }

# -- pkiaas ---------------------------------------------------------------
start_daemon
api POST /cas '{"id":"root","type":"root","signingKeyDetails":"RSA-2048+PKCS15-SHA256","subject":"CN=SCEP Bench Root"}' >/dev/null
api POST /cas '{"id":"iss","type":"subord","parentId":"root","signingKeyDetails":"RSA-2048+PKCS15-SHA256","subject":"CN=SCEP Bench Issuing","profiles":["scep-tls-client"]}' >/dev/null
api POST /protocols '{"id":"bench","type":"scep","caId":"iss","profileId":"scep-tls-client"}' >/dev/null
CHALLENGE=$(api POST /protocols/bench/credentials '{"name":"bench"}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
PKIAAS_URL="$BASE/scep/bench/bench/pkiclient.exe"

# -- scepserver ---------------------------------------------------------------
PEER_PORT=$(free_port)
(cd "$WORK" && scepserver ca -init -depot "$WORK/depot" -keySize 2048 >/dev/null 2>&1)
scepserver -depot "$WORK/depot" -port "$PEER_PORT" -challenge "$CHALLENGE" -allowrenew 0 >"$WORK/peer-server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PEER_PORT/scep?operation=GetCACaps" >/dev/null && break; sleep 0.1; done
PEER_URL="http://127.0.0.1:$PEER_PORT/scep"

run_enrolments() { # NAME URL -> "enrolments/s failures" on stdout (failures do not stop the run:
  # the peer's file depot is known to trip over concurrent requests)
  local name=$1 url=$2 per=$((N / CLIENTS)) t0 t1 loops=()
  : > "$WORK/$name.ok"; : > "$WORK/$name.failed"
  t0=$(date +%s.%N)
  for c in $(seq "$CLIENTS"); do
    (
      for i in $(seq "$per"); do
        d="$WORK/$name-$c-$i"; mkdir -p "$d"; cd "$d"
        if scepclient -server-url "$url" -private-key k.key -certificate c.pem -cn "dev-$c-$i" \
            -challenge "$CHALLENGE" >/dev/null 2>>"$WORK/$name-client.log" && [ -s c.pem ]; then
          echo x >> "$WORK/$name.ok"
        else
          echo x >> "$WORK/$name.failed"
        fi
      done
    ) &
    loops+=($!)
  done
  for p in "${loops[@]}"; do wait "$p" || true; done
  t1=$(date +%s.%N)
  local ok failed
  ok=$(wc -l < "$WORK/$name.ok"); failed=$(wc -l < "$WORK/$name.failed")
  if [ "$failed" != 0 ]; then
    { grep -iE 'fail|error=[^n]|refused|EOF' "$WORK/$name-client.log" || true; } | sed 's/ts=[^ ]* //; s/took=.*//' |
      sort | uniq -c | sort -rn | head -3 | sed "s/^/  $name client: /" >&2
  fi
  /usr/bin/python3 -c "print(f'{$ok/($t1-$t0):.1f} $failed')"
}

read -r P_RATE P_FAIL < <(run_enrolments pkiaas "$PKIAAS_URL")
read -r S_RATE S_FAIL < <(run_enrolments scepserver "$PEER_URL")
echo "scep: $N enrolments (PKCSReq, RSA-2048 client keys, static challenge), $CLIENTS concurrent scepclient processes"
echo "  pkiaas      $P_RATE enrolments/s ($P_FAIL failed)"
echo "  scepserver  $S_RATE enrolments/s ($S_FAIL failed)"
echo "  ratio       $(ratio "$P_RATE" "$S_RATE")"
