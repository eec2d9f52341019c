#!/usr/bin/env bash
# bench/crl: build and sign a CRL with N revoked entries (default 1,000,000);
# prints seconds and the daemon's peak RSS growth, next to `openssl ca -gencrl`
# over an index with the same number of revoked entries.
. "$(dirname "$0")/lib.sh"
N=${N:-1000000}
start_daemon
api POST /cas '{"id":"root","type":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=CRL Bench Root"}' >/dev/null
api POST /cas '{"id":"big","type":"subord","parentId":"root","signingKeyDetails":"ECDSAP256+SHA256","subject":"CN=CRL Bench Issuing","enableCrl":true}' >/dev/null
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
# Revoked rows are written straight into the store (issuing a million
# certificates through the API would measure issuance, not the CRL).
sqlite3 "$WORK/data/pkiaas.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < $N)
INSERT INTO certificate(partition_id, issuer_ca_pk, serial, subject, not_before, not_after, status,
                        revocation_reason, revoked_at, is_ca, der, created_at)
SELECT 'bench', (SELECT pk FROM ca WHERE ca_id='big'), lower(hex(randomblob(16))), 'CN=x', 0, 4102444800, 'revoked',
       i % 6, strftime('%s','now') - i, 0, x'00', 0 FROM n;
SQL
"$BUILD/pkiaasd" serve --data-dir "$WORK/data" --http 127.0.0.1:$HTTP_PORT --https 127.0.0.1:$HTTPS_PORT \
    --config "$PKIAAS_CONFIG" 2>> "$WORK/daemon.log" &
DAEMON_PID=$!; PIDS+=("$DAEMON_PID")
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
# The scheduler builds the first CRL at start; wait for it so the measured
# build does not overlap it.
for _ in $(seq 600); do
  n=$(api GET /cas/big/crls | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["crls"]))')
  [ "$n" -ge 1 ] && break; sleep 0.1
done
RSS0=$(awk '/VmHWM/ {print $2}' /proc/$DAEMON_PID/status)
T0=$(date +%s.%N)
api POST /cas/big/crl >/dev/null || { echo "publish failed:"; tail -5 "$WORK/daemon.log"; exit 1; }
T1=$(date +%s.%N)
RSS1=$(awk '/VmHWM/ {print $2}' /proc/$DAEMON_PID/status)
curl -sf "$BASE/crl/bench/big/crl.crl" -o "$WORK/big.crl"
ENTRIES=$(openssl crl -inform DER -in "$WORK/big.crl" -noout -text | grep -c 'Serial Number' || true)
SECS=$(/usr/bin/python3 -c "print(f'{$T1-$T0:.2f}')")
PEAK=$(( RSS1 / 1024 ))

# Peer: openssl ca -gencrl over an index with N revoked entries.
mkdir -p "$WORK/ossl/newcerts"; cd "$WORK/ossl"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -subj "/CN=peer" -days 30 -out ca.pem 2>/dev/null
/usr/bin/python3 - index.txt "$N" <<'PY'
import os, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"R\t301231235959Z\t231123000000Z,keyCompromise\t{os.urandom(16).hex().upper()}\tunknown\t/CN=x{i}\n")
PY
echo 1000 > crlnumber
cat > ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = index.txt
crlnumber = crlnumber
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_crl_days = 7
new_certs_dir = newcerts
CNF
PEER=$( { /usr/bin/time -f "%e %M" openssl ca -config ca.cnf -gencrl -out peer.crl 2>&1 >/dev/null; } | tail -1)
PEER_S=$(echo "$PEER" | awk '{print $1}'); PEER_MB=$(echo "$PEER" | awk '{print int($2/1024)}')
echo "bench/crl (N=$N revoked entries)"
printf "  pkiaas:          %6.2f s, whole-daemon peak RSS %d MB, %d entries in the served CRL\n" "$SECS" "$PEAK" "$ENTRIES"
printf "  openssl ca:      %6.2f s, peak RSS %d MB   (pkiaas time ratio %s)\n" "$PEER_S" "$PEER_MB" "$(ratio "$PEER_S" "$SECS")"
