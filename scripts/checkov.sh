#!/usr/bin/env bash
# Run checkov from its own virtualenv. Checkov pins boto3 and installs a `hcl2` package that
# conflicts with the project's dependencies, so it never goes into .venv.
# Usage: scripts/checkov.sh [checkov args...]   (default: scan terraform/ with its config)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CHECKOV_VENV:-$root/.venv-checkov}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/checkov" ]; then
  echo "Creating $venv for checkov (first use only)..." >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q 'checkov>=3.2,<4' >&2
fi

if [ $# -eq 0 ]; then
  set -- --directory "$root/terraform" --framework terraform --compact --quiet --skip-download --skip-path tests
fi
exec "$venv/bin/checkov" "$@"
