#!/usr/bin/env bash
# A private, throw-away PostgreSQL cluster for tests and benchmarks; no
# system service is assumed or touched.
#
#   pg-cluster.sh start DIR   initdb + pg_ctl start in DIR (created), on a
#                             free 127.0.0.1 port with the unix socket in
#                             DIR; prints the connection URL (superuser, trust
#                             authentication: local test use only)
#   pg-cluster.sh stop DIR    stops the cluster and removes DIR
#   pg-cluster.sh url DIR     prints the URL again
#   pg-cluster.sh pause DIR   stops the server, keeping the cluster (outage tests)
#   pg-cluster.sh resume DIR  starts it again
#
# initdb refuses to run as root: as root the cluster belongs to the
# `postgres` system user (created by Debian's postgresql package) and the
# server runs as that user.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop|url|pause|resume DIR" >&2
  exit 2
fi

bindir=""
for v in 17 16 15 14 13; do
  if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then
    bindir="/usr/lib/postgresql/$v/bin"
    break
  fi
done
if [ -z "$bindir" ]; then
  echo "pg-cluster.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() {
  local port
  port=$(cat "$dir/port")
  # libpq URI: the host parameter (socket directory) is percent-encoded
  local sock
  sock=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$dir/sock")
  echo "postgresql://postgres@/postgres?host=${sock}&port=${port}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/data" "$dir/sock"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$dir"
    # the postgres user must reach DIR through its parents (use /tmp or the like)
    if ! runuser -u postgres -- test -w "$dir"; then
      echo "pg-cluster.sh: the postgres user cannot reach $dir; choose a directory under /tmp" >&2
      exit 1
    fi
  fi
  port=$(free_port)
  echo "$port" >"$dir/port"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  # A test cluster: durability is not the point, speed is.
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
  }
  url
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
url)
  url
  ;;
pause)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
  ;;
resume)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
  ;;
*)
  echo "usage: $0 start|stop|url|pause|resume DIR" >&2
  exit 2
  ;;
esac
