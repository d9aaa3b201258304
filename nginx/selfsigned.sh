#!/usr/bin/env bash
# A self-signed certificate for localhost (local use and tests only), unless one exists.
#   usage: nginx/selfsigned.sh DIR     -> DIR/cert.pem, DIR/key.pem (key mode 600)
set -euo pipefail
dir=${1:?usage: nginx/selfsigned.sh DIR}
mkdir -p "$dir"
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
  exit 0
fi
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
chmod 644 "$dir/cert.pem"
echo "self-signed certificate for localhost in $dir"
