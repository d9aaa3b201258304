#!/usr/bin/env bash
# `make data-upload DATA=<dir> [DATA_STORE=s3://bucket/prefix]`: put a Kermany-layout folder
# in the data set store the GPU box's training unit syncs from (model/datasets.py): the
# images first, only new or changed ones, then MANIFEST.sha256 (one sha256 per file).
#
# The store and region come from `terraform output` (terraform/ or $TF_DIR), like
# `make release`; set DATA_STORE (and AWS_REGION) to skip terraform.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tf_dir=${TF_DIR:-$root/terraform}
py=${PY:-$root/.venv/bin/python}

data=${DATA:-}
if [[ -z $data ]]; then
  echo "data-upload: name the folder: make data-upload DATA=<Kermany-layout folder>" >&2
  exit 2
fi

# tf_output NAME PATTERN: the output when terraform has it and it looks right, else nothing
# (without state, `terraform output` prints a warning, not a value).
tf_output() {
  local value
  command -v terraform >/dev/null 2>&1 || return 0
  value=$(terraform -chdir="$tf_dir" output -no-color -raw "$1" 2>/dev/null) || return 0
  [[ $value =~ $2 ]] && echo "$value"
  return 0
}

store=${DATA_STORE:-$(tf_output dataset_store '^s3://[a-z0-9.-]+/[^[:space:]]*$')}
if [[ ! $store =~ ^s3://[^/]+ ]]; then
  echo "data-upload: no data set store: set DATA_STORE=s3://bucket/prefix, or apply terraform/" \
    "so that \`terraform output dataset_store\` names it (looked in $tf_dir)" >&2
  exit 2
fi
region=${AWS_REGION:-$(tf_output region '^[a-z]{2}(-[a-z]+)+-[0-9]+$')}
if [[ -n $region ]]; then
  export AWS_REGION=$region AWS_DEFAULT_REGION=$region
fi

exec "$py" -m model.datasets upload "$data" "$store"
