################################################################################
# Generated secrets, kept out of code, user_data and the state file
#
# The design called for `random_password`, but the `hashicorp/random` provider is not
# in the offline mirror this project is tested against, and `random_password` would
# also write every secret into the state in clear text. Instead modules/secrets writes
# values drawn by Terraform's own uuid() (crypto/rand) into SSM SecureStrings through
# the write-only `value_wo` argument: never in the plan, never in the state. (An
# ephemeral `aws_secretsmanager_random_password` would do too, but `terraform test`'s
# mock provider cannot mock ephemeral resources.)
# Instances read the parameters their role may read (iam.tf) at boot; user_data carries
# only the parameter path.
################################################################################

locals {
  parameter_path = "/${local.name}"

  # secret -> roles whose instance profile may read it
  secret_readers = {
    redis_password = ["app", "ml", "worker"]
    api_token      = ["app", "ui"]
    secret_key     = ["ui"]
    grafana_admin  = ["monitoring"]
  }
}

module "secrets" {
  source = "./modules/secrets"

  parameter_path = local.parameter_path
  secrets        = { for name, readers in local.secret_readers : name => "${local.name} ${name} (readers: ${join(", ", readers)})" }
  kms_key_arn    = aws_kms_key.this.arn
  version_number = var.secrets_version
  overrides      = { grafana_admin = var.grafana_admin_password }
}
