#!/usr/bin/env bash
# make bench: every benchmark, each against a peer measured in the same run.
set -euo pipefail
BUILD=${1:-build}
DIR=$(dirname "$0")
for b in issue ocsp crl revoke_bulk acme scep; do
  echo "== bench/$b"
  bash "$DIR/$b.sh" "$BUILD"
done
