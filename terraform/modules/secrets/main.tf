# SSM SecureString parameters holding generated secrets, written through the write-only
# `value_wo`: the values never reach the plan or the state.
#
# The value is two of Terraform's built-in uuid() (hashicorp/go-uuid, crypto/rand: 244
# random bits) with the dashes removed: 64 hex characters, safe unquoted in a redis:// URL
# and an env file. uuid() changes at every evaluation, which is harmless here: a
# write-only argument is never compared, only `value_wo_version` decides when it is
# written. A value given in `overrides` (itself ephemeral) wins.

resource "aws_ssm_parameter" "this" {
  for_each = var.secrets

  name        = "${var.parameter_path}/${each.key}"
  description = each.value
  type        = "SecureString"
  key_id      = var.kms_key_arn

  value_wo = (lookup(var.overrides, each.key, null) != null
    ? var.overrides[each.key]
    : replace("${uuid()}${uuid()}", "-", "")
  )
  value_wo_version = var.version_number
}
