#!/usr/bin/env bash
# Runs every libFuzzer harness of a fuzz build for a number of seconds each.
# The corpus starts from fuzz/corpus/<name> and fuzz/regressions/<name> (kept
# crash inputs, which must stay fixed); new inputs go to a temporary copy, so
# the tree is never modified. A crash fails the run and leaves the input in
# fuzz-artifacts/<name>/ to be added to fuzz/regressions/<name>/ with the fix.
#   scripts/fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/pkiaas-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail=0
for h in "$BUILD"/fuzz_*; do
  [ -x "$h" ] || continue
  name=$(basename "$h"); short=${name#fuzz_}
  mkdir -p "$WORK/$short" "$ROOT/fuzz-artifacts/$short"
  for d in "$ROOT/fuzz/corpus/$short" "$ROOT/fuzz/regressions/$short"; do
    [ -d "$d" ] && cp -r "$d"/. "$WORK/$short"/ 2>/dev/null || true
  done
  if "$h" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$ROOT/fuzz-artifacts/$short/" "$WORK/$short" > "$WORK/$short.log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$WORK/$short.log")
    echo "fuzz $short: ${runs:-?} inputs in ${SECONDS_EACH}s, no crash"
    rmdir "$ROOT/fuzz-artifacts/$short" 2>/dev/null || true
  else
    # The harness's own message, the sanitizer's stack and the input itself,
    # so a failure on a machine whose files are gone can still be reproduced.
    echo "fuzz $short: FAILED"; tail -n 60 "$WORK/$short.log"
    for a in "$ROOT/fuzz-artifacts/$short"/*; do
      [ -f "$a" ] && { echo "input $(basename "$a") (base64):"; base64 -w 0 "$a" | head -c 65536; echo; }
    done
    fail=1
  fi
done
rmdir "$ROOT/fuzz-artifacts" 2>/dev/null || true
exit $fail
