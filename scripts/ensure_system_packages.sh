#!/usr/bin/env bash
# Install the OS packages the local stack and the test suite run for real (Redis, nginx,
# Prometheus, Alertmanager, node_exporter, Chromium, shellcheck...). Idempotent: a package
# whose program is already on the PATH is skipped, so a warm machine pays nothing.
#
# Why a script and not a README step: a fresh clone must come up with `make up` / `make test`
# alone. As root with apt-get we install; otherwise we name the missing packages and stop.
set -euo pipefail

# program:debian-package pairs. Keep in step with the README's "Requirements" table.
PAIRS=(
  redis-server:redis-server
  nginx:nginx
  prometheus:prometheus
  promtool:prometheus
  prometheus-alertmanager:prometheus-alertmanager
  amtool:prometheus-alertmanager
  prometheus-node-exporter:prometheus-node-exporter
  prometheus-redis-exporter:prometheus-redis-exporter
  prometheus-nginx-exporter:prometheus-nginx-exporter
  chromium:chromium
  shellcheck:shellcheck
  openssl:openssl
  envsubst:gettext-base
  git:git
)

missing=()
for pair in "${PAIRS[@]}"; do
  prog=${pair%%:*}; pkg=${pair#*:}
  if ! command -v "$prog" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$prog" ] && [ ! -x "/usr/bin/$prog" ]; then
    [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing OS packages: ${missing[*]}" >&2
  echo "Install them with your package manager (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "Installing OS packages: ${missing[*]}"
# Packages such as nginx and redis-server start a system service on install. Our stack runs
# its own instances on its own ports, so keep the package scripts from starting anything.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "OS packages installed."
