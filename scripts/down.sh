#!/usr/bin/env bash
# `make down`: stop a local stack started with `make up` in another terminal or in the background.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f var/run/up.pid ] && kill -0 "$(cat var/run/up.pid)" 2>/dev/null; then
  kill -TERM "$(cat var/run/up.pid)"
  echo "Stopping the local stack (pid $(cat var/run/up.pid))."
else
  echo "No local stack is running."
fi
