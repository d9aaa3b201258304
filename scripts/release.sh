#!/usr/bin/env bash
# `make release [REF=<commit-ish>]`: the code at one commit, with its lock files, as an
# immutable artifact: <release store>/<commit>.tar.gz and <commit>.tar.gz.sha256 beside it.
# An artifact already in the store is never overwritten (a release is immutable).
#
# The store and region come from `terraform output` (terraform/ or $TF_DIR); set
# RELEASE_STORE (s3://bucket/prefix) and AWS_REGION to skip terraform.
# Prints RELEASE=<commit> SHA256=<sha256> for `make deploy`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tf_dir=${TF_DIR:-$root/terraform}

ref=${REF:-HEAD}
commit=$(git rev-parse --verify --quiet "$ref^{commit}") || {
  echo "release: $ref is not a commit of this repository" >&2
  exit 2
}
if [[ $ref == HEAD && -n $(git status --porcelain --untracked-files=no) ]]; then
  echo "release: uncommitted changes are not part of release $commit (commit them first)" >&2
fi
# Each host installs its role's lock (LOCK_FILE in its bootstrap template): all must be there.
locks=$(git grep -h -o -E 'LOCK_FILE=requirements/[a-z]+\.lock' "$commit" -- terraform/templates |
  cut -d= -f2 | sort -u)
[[ -n $locks ]] || {
  echo "release: $commit names no lock file in terraform/templates (LOCK_FILE=)" >&2
  exit 2
}
for lock in $locks; do
  git cat-file -e "$commit:$lock" 2>/dev/null || {
    echo "release: $commit has no $lock: the boxes install from the lock files (make lock)" >&2
    exit 2
  }
done

store=${RELEASE_STORE:-$(terraform -chdir="$tf_dir" output -raw release_store)}
export AWS_REGION=${AWS_REGION:-$(terraform -chdir="$tf_dir" output -raw region)}
export AWS_DEFAULT_REGION=$AWS_REGION

name=$commit.tar.gz
out=$root/var/releases
mkdir -p "$out"

if existing=$(aws s3 cp --only-show-errors "$store/$name.sha256" - 2>/dev/null); then
  echo "release: $commit is already in $store (releases are immutable)" >&2
  echo "RELEASE=$commit SHA256=${existing%% *}"
  exit 0
fi

git archive --format=tar.gz -o "$out/$name" "$commit"
(cd "$out" && sha256sum "$name" >"$name.sha256")
sha=$(cut -d' ' -f1 "$out/$name.sha256")
aws s3 cp --only-show-errors "$out/$name" "$store/$name"
aws s3 cp --only-show-errors "$out/$name.sha256" "$store/$name.sha256"
echo "release: uploaded $store/$name" >&2
echo "RELEASE=$commit SHA256=$sha"
