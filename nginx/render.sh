#!/usr/bin/env bash
# Render the nginx configuration into OUT_DIR:
#   OUT_DIR/pneumonia.conf  the server blocks (what production puts in /etc/nginx/conf.d/)
#   OUT_DIR/nginx.conf      a full nginx.conf for running it locally, unprivileged, in the
#                           foreground, with pid, temp files and logs under OUT_DIR
# Settings come from the environment; the defaults are those of `make up`.
#   usage: nginx/render.sh OUT_DIR
#   then:  nginx -e stderr -p OUT_DIR -c OUT_DIR/nginx.conf       (-t to only check it)
# The envsubst variable lists are in single quotes on purpose: envsubst reads them literally.
# shellcheck disable=SC2016
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: nginx/render.sh OUT_DIR}
mkdir -p "$out/tmp"
out=$(cd "$out" && pwd)

export LISTEN_HTTP=${LISTEN_HTTP:-8080}
export LISTEN_HTTPS=${LISTEN_HTTPS:-8443}
export SERVER_NAME=${SERVER_NAME:-localhost}
export UI_UPSTREAM=${UI_UPSTREAM:-127.0.0.1:5001}
export TLS_CERT=${TLS_CERT:-$here/../var/tls/cert.pem}
export TLS_KEY=${TLS_KEY:-$here/../var/tls/key.pem}
export MAX_BODY=${MAX_BODY:-33m}
export MONITORING_CIDR=${MONITORING_CIDR:-127.0.0.1/32}
export ACCESS_LOG=${ACCESS_LOG:-$out/access.log}
export NGINX_DIR=$out
export NGINX_USER=${NGINX_USER:-$(id -un)}
export NGINX_MIME_TYPES=${NGINX_MIME_TYPES:-/etc/nginx/mime.types}

# Only these names are substituted; nginx's own $variables pass through untouched.
envsubst '${LISTEN_HTTP} ${LISTEN_HTTPS} ${SERVER_NAME} ${UI_UPSTREAM} ${TLS_CERT} ${TLS_KEY} ${MAX_BODY} ${MONITORING_CIDR} ${ACCESS_LOG}' \
  < "$here/pneumonia.conf.template" > "$out/pneumonia.conf"
envsubst '${NGINX_DIR} ${NGINX_USER} ${NGINX_MIME_TYPES}' \
  < "$here/local.conf.template" > "$out/nginx.conf"
echo "rendered $out/pneumonia.conf and $out/nginx.conf"
