# Shared helpers for the benchmarks (sourced). Every benchmark starts its own
# daemon on free ports in a temporary directory and removes it afterwards.
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
WORK=$(mktemp -d /tmp/pkiaas-bench.XXXXXX)
PIDS=()
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_DIR=""  # set by start_pg: a private PostgreSQL cluster, removed with $WORK
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  [ -n "$PG_DIR" ] && "$REPO/scripts/pg-cluster.sh" stop "$PG_DIR" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A private PostgreSQL cluster (scripts/pg-cluster.sh) in $WORK/pg, started
# on first use; sets PG_DB_URL to a new database DBNAME on it.
start_pg() { # DBNAME
  if [ -z "$PG_DIR" ]; then
    PG_DIR="$WORK/pg"
    chmod 711 "$WORK" # mktemp made it 0700: the postgres user must pass through it
    PG_URL=$("$REPO/scripts/pg-cluster.sh" start "$PG_DIR")
  fi
  psql -X -q -d "$PG_URL" -c "CREATE DATABASE \"$1\"" >/dev/null
  PG_DB_URL=$(echo "$PG_URL" | sed "s|/postgres?|/$1?|")
}

# DATA (default $WORK/data): the daemon's data directory; STORE: a store URI
# (default: SQLite in DATA).
start_daemon() {
  local data=${DATA:-$WORK/data}
  HTTP_PORT=$(free_port); HTTPS_PORT=$(free_port)
  # Benchmarks measure throughput: the per-partition rate limits are off.
  if [ -z "${PKIAAS_CONFIG:-}" ]; then
    PKIAAS_CONFIG="$WORK/bench.conf"
    printf 'rate_limit_standard = 0\nrate_limit_premium = 0\n' > "$PKIAAS_CONFIG"
    if [ -n "${STORE:-}" ]; then printf 'store = "%s"\n' "$STORE" >> "$PKIAAS_CONFIG"; fi
  fi
  "$BUILD/pkiaasd" bootstrap --data-dir "$data" --partition bench --owner-email bench@example.com \
      --http 127.0.0.1:$HTTP_PORT --https 127.0.0.1:$HTTPS_PORT --certificates 100000000 --cas 100 \
      --config "$PKIAAS_CONFIG" --json > "$WORK/boot.json"
  TOKEN=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["apiToken"])' "$WORK/boot.json")
  "$BUILD/pkiaasd" serve --data-dir "$data" --http 127.0.0.1:$HTTP_PORT --https 127.0.0.1:$HTTPS_PORT \
      ${PKIAAS_CONFIG:+--config "$PKIAAS_CONFIG"} 2> "$WORK/daemon.log" &
  DAEMON_PID=$!
  PIDS+=("$DAEMON_PID")
  BASE=http://127.0.0.1:$HTTP_PORT
  API=$BASE/api/v1/partitions/bench
  for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "daemon did not start" >&2; cat "$WORK/daemon.log" >&2; exit 1
}

api() { # METHOD PATH [JSON]
  curl -sf -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       ${3:+--data-binary "$3"} "$API$2"
}

ratio() { /usr/bin/python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}x" if b else "n/a")' "$1" "$2"; }

wrk_rps() { # wrk output on stdin -> requests/s
  awk '/Requests\/sec/ {print $2}'
}
