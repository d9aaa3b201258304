################################################################################
# Releases in place
#
# A release is an immutable artifact: `make release` packs the code at one commit with
# its lock files into s3://<model bucket>/releases/<commit>.tar.gz beside its .sha256.
# `make deploy RELEASE=<commit>` runs the deploy document below on one tier after the
# other (one box at a time): each box stops taking work, installs the artifact after
# checking its sha256, reconfigures, restarts, health-checks and, on failure, switches
# back to the release it ran before. The release parameter then names the new release,
# which is what a box installs when it boots for the first time.
#
# user_data holds none of this, so a new release replaces no instance.
################################################################################

locals {
  release_store     = "s3://${aws_s3_bucket.this["models"].id}/releases"
  release_parameter = "${local.parameter_path}/release"

  # The order `make deploy` rolls the tiers in: the back end first, so a new UI never
  # talks to an old API; nginx last.
  deploy_order = [for role in ["app", "worker", "ml", "ui", "monitoring", "nginx"] : role if contains(local.instance_roles, role)]
}

# The release new boxes install. terraform seeds it; `make deploy` owns it afterwards.
resource "aws_ssm_parameter" "release" {
  #checkov:skip=CKV2_AWS_34:names a commit of the public release store, not a secret; a String every role reads without a KMS grant
  name        = local.release_parameter
  description = "${local.name}: the release (commit) every box runs; written by make deploy"
  type        = "String"
  value       = coalesce(var.initial_release, "none")

  lifecycle {
    ignore_changes = [value]
  }
}

resource "aws_ssm_document" "deploy" {
  name            = "${local.name}-deploy"
  document_type   = "Command"
  document_format = "YAML"

  content = yamlencode({
    schemaVersion = "2.2"
    description   = "Install a ${local.name} release on this box in place (stop, install, restart, health-check, roll back on failure), or only reconfigure it (e.g. after a secret rotation)."
    parameters = {
      Action = {
        type          = "String"
        description   = "deploy: install Release; configure: rewrite the configs and secrets of the running release and restart."
        allowedValues = ["deploy", "configure"]
        default       = "deploy"
      }
      Release = {
        type           = "String"
        description    = "Commit id of the release (make release prints it)."
        allowedPattern = "^[0-9a-f]{7,40}$"
      }
      Sha256 = {
        type           = "String"
        description    = "sha256 of the artifact (its .sha256 beside it in the release store)."
        allowedPattern = "^[0-9a-f]{64}$"
      }
    }
    mainSteps = [{
      action = "aws:runShellScript"
      name   = "deploy"
      inputs = {
        timeoutSeconds = "3600"
        runCommand     = ["/usr/local/sbin/pneumonia-host {{ Action }} {{ Release }} {{ Sha256 }}"]
      }
    }]
  })
}
