################################################################################
# Snapshots of the data volumes (AWS Backup): daily at 03:00 UTC, kept
# backup_retention_days, in a vault encrypted with the project's key. Every volume
# tagged Backup=<project> is selected (modules/instance tags the data volumes).
# Restore: terraform/README.md, "Restore from a snapshot".
################################################################################

resource "aws_backup_vault" "this" {
  count = var.enable_backups ? 1 : 0

  name        = "${local.name}-data"
  kms_key_arn = aws_kms_key.this.arn
}

resource "aws_backup_plan" "this" {
  count = var.enable_backups ? 1 : 0

  name = "${local.name}-data"

  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.this[0].name
    schedule          = "cron(0 3 * * ? *)"
    start_window      = 60
    completion_window = 180

    lifecycle {
      delete_after = var.backup_retention_days
    }
  }
}

data "aws_iam_policy_document" "backup_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["backup.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "backup" {
  count = var.enable_backups ? 1 : 0

  name               = "${local.name}-backup"
  description        = "Lets AWS Backup snapshot the ${local.name} data volumes"
  assume_role_policy = data.aws_iam_policy_document.backup_assume.json
}

resource "aws_iam_role_policy_attachment" "backup" {
  for_each = var.enable_backups ? toset(["AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores"]) : toset([])

  role       = aws_iam_role.backup[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/${each.key}"
}

resource "aws_backup_selection" "data_volumes" {
  count = var.enable_backups ? 1 : 0

  name         = "${local.name}-data-volumes"
  plan_id      = aws_backup_plan.this[0].id
  iam_role_arn = aws_iam_role.backup[0].arn
  resources    = ["arn:${data.aws_partition.current.partition}:ec2:${local.region}:${data.aws_caller_identity.current.account_id}:volume/*"]

  selection_tag {
    type  = "STRINGEQUALS"
    key   = "Backup"
    value = local.name
  }
}
