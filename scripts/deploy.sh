#!/usr/bin/env bash
# `make deploy RELEASE=<commit> [ACTION=deploy|configure] [ROLES="app ui"]`: roll a release
# (made by `make release`) over the running boxes in place, one tier after the other in
# terraform's deploy_order and one box at a time, with the SSM deploy document: each box stops
# taking work, installs the artifact (sha256 checked), restarts, health-checks and rolls back
# on failure. The first failing tier stops the roll-out; the tiers after it keep the release
# they run. When every tier succeeded, the release parameter names the new release, so boxes
# that boot later (replacements, scaled workers) install it too.
#
# ACTION=configure re-reads configs and secrets on the running release (secret rotation).
# Stopped boxes (the idle GPU box) are skipped: start them first or `make deploy` again.
# Settings come from `terraform output` (terraform/ or $TF_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tf_dir=${TF_DIR:-$root/terraform}
release=${RELEASE:?usage: make deploy RELEASE=<commit> (make release prints it)}
action=${ACTION:-deploy}
poll=${DEPLOY_POLL_SECONDS:-10}

out() { terraform -chdir="$tf_dir" output -raw "$1"; }
project=$(out project)
export AWS_REGION=${AWS_REGION:-$(out region)}
export AWS_DEFAULT_REGION=$AWS_REGION
store=$(out release_store)
document=$(out deploy_document)
parameter=$(out release_parameter)
roles=${ROLES:-$(terraform -chdir="$tf_dir" output -json deploy_order | tr -d '[]"' | tr ',' ' ')}

sha=$(aws s3 cp --only-show-errors "$store/$release.tar.gz.sha256" - | cut -d' ' -f1) || true
[[ $sha =~ ^[0-9a-f]{64}$ ]] || {
  echo "deploy: no artifact for $release in $store: run make release first" >&2
  exit 2
}

for role in $roles; do
  ids=$(aws ec2 describe-instances --output text --query 'Reservations[].Instances[].InstanceId' \
    --filters "Name=tag:Project,Values=$project" "Name=tag:Role,Values=$role" \
    "Name=instance-state-name,Values=running")
  if [[ -z $ids ]]; then
    echo "deploy: no running $role box, skipped"
    continue
  fi
  # shellcheck disable=SC2086 # one argument per instance id
  command_id=$(aws ssm send-command --document-name "$document" --instance-ids $ids \
    --max-concurrency 1 --max-errors 0 --comment "$action $release on $role" \
    --parameters "Action=$action,Release=$release,Sha256=$sha" \
    --query Command.CommandId --output text)
  echo "deploy: $action $release on $role ($ids): command $command_id"
  while :; do
    status=$(aws ssm list-commands --command-id "$command_id" --query 'Commands[0].Status' --output text)
    case $status in
    Pending | InProgress) sleep "$poll" ;;
    Success) break ;;
    *)
      echo "deploy: $role ended $status: stopped here (see the command's output in SSM)." >&2
      echo "deploy: the tiers after $role keep their release; the release parameter is unchanged." >&2
      exit 1
      ;;
    esac
  done
done

if [[ $action == deploy ]]; then
  aws ssm put-parameter --name "$parameter" --value "$release" --type String --overwrite >/dev/null
  echo "deploy: $release is the current release ($parameter)"
fi
