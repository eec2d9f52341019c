#!/usr/bin/env bash
# `make run`: bootstrap a demo partition on first run, print where to go and
# which credentials to use, then serve in the foreground (Ctrl-C stops).
set -euo pipefail
BUILD=$1 DATA=$2 HTTP=$3 HTTPS=$4
mkdir -p "$DATA"
chmod 700 "$DATA"
CREDS="$DATA/demo-credentials.json"
if [ ! -s "$CREDS" ]; then
  umask 077
  "$BUILD/pkiaasd" bootstrap --data-dir "$DATA" --partition demo --owner-email owner@demo.example \
    --http "$HTTP" --https "$HTTPS" --json > "$CREDS.tmp"
  mv "$CREDS.tmp" "$CREDS"
  FIRST=1
fi
TOKEN=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["apiToken"])' "$CREDS")
cat <<MSG

  pkiaas is starting.
    Web portal:   https://$HTTPS/   (or http://$HTTP/; sign in as owner@demo.example with the
                  password below, then add the TOTP secret it shows to an authenticator app)
    API (HTTP):   http://$HTTP/api/v1/partitions/demo/cas
    API (HTTPS):  https://$HTTPS/api/v1/partitions/demo/cas   (trust $DATA/service-ca.pem)
    Health:       http://$HTTP/healthz
    Partition:    demo
MSG
if [ "${FIRST:-0}" = 1 ]; then
  echo "    Credentials (shown now; kept only in $CREDS, mode 0600):"
  sed 's/^/      /' "$CREDS"
else
  echo "    Credentials: $CREDS (mode 0600)"
fi
cat <<MSG

  Try:
    export PKIAAS_URL=http://$HTTP PKIAAS_PARTITION=demo PKIAAS_TOKEN=\$(python3 -c 'import json;print(json.load(open("$CREDS"))["apiToken"])')
    $BUILD/pkiaas ca create --id root-1 --type root --key ECDSAP256+SHA256 --subject "CN=Demo Root"
    $BUILD/pkiaas ca list

MSG
: "$TOKEN"
exec "$BUILD/pkiaasd" serve --data-dir "$DATA" --http "$HTTP" --https "$HTTPS"
