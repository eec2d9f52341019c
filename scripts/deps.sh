#!/usr/bin/env bash
# Installs every Debian package pkiaas needs to build, run and test.
# Idempotent: does nothing when all packages are present; otherwise runs
# `apt-get update` first, then installs only what is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libssl-dev openssl
  libmicrohttpd-dev libgnutls28-dev
  libjansson-dev
  # IDNA2008: "xn--" labels in DNS names must be real A-labels (x509/san.c)
  libidn2-dev
  libsqlite3-dev sqlite3
  # PostgreSQL store backend (multi-node, issue #11): libpq to build; the
  # server and psql for the tests' private cluster (scripts/pg-cluster.sh)
  libpq-dev postgresql postgresql-client
  libcurl4-openssl-dev curl
  libcmocka-dev
  # the daemon's allocator (CMake option PKIAAS_JEMALLOC; docs/benchmarks.md says why)
  libjemalloc-dev
  python3 python3-pytest python3-cryptography python3-requests
  # real ACME clients and pebble-challtestsrv (DNS for validation) for the tests
  certbot lego uacme pebble util-linux
  # SCEP: micromdm scepclient; asn1crypto builds hand-made SCEP messages in the tests
  scep python3-asn1crypto
  # libFuzzer harnesses (make fuzz, part of make test)
  clang libclang-rt-14-dev
  # the web portal's browser tests (tests/integration/test_portal.py): playwright-core
  # from npm drives this headless chromium; it never downloads a browser of its own
  chromium
)
# npm (for the Swagger UI files and the web portal build) only when the machine has none of its own
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

# `deps.sh --bench` adds the load generators and peers of bench/.
if [ "${1:-}" = "--bench" ]; then
  PKGS+=(wrk golang-cfssl time)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
