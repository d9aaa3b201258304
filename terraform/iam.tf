################################################################################
# Instance roles: one per role, least privilege
#
# all        Session Manager and Run Command (the custom `session` policy below, which,
#            unlike AmazonSSMManagedInstanceCore, reads no parameter), the release
#            parameter and artifacts, its own log groups
# app        its secrets; reads the model bucket
# ml         its secrets; reads and writes the model bucket; reads the training data set
# worker     its secrets; reads the model bucket
# ui         its secrets
# monitoring its secret; ec2:DescribeInstances for Prometheus discovery; publishes alerts
# nginx      the TLS certificate parameters, when given
#
# Secrets: ssm:GetParameter on the role's own parameters, and kms:Decrypt only when SSM
# asks on behalf of one of those parameters (kms:EncryptionContext:PARAMETER_ARN), so no
# role can decrypt another role's secret even through another path.
# tests/terraform/test_iam_table.py evaluates every role's final policies (inline and
# attached) against the role x parameter table.
################################################################################

locals {
  bucket_readers = toset(["app", "ml", "worker"])
  bucket_writers = toset(["ml"])

  tls_parameters = compact([var.tls_certificate_parameter, var.tls_private_key_parameter])

  parameter_arn_prefix = "arn:${data.aws_partition.current.partition}:ssm:${local.region}:${data.aws_caller_identity.current.account_id}:parameter"

  # role -> ARNs of the SecureString parameters it may read (built from the names, so
  # that the policy reads the same in a plan as in the account)
  role_secrets = {
    for role in local.instance_roles : role => concat(
      [for name, readers in local.secret_readers : "${local.parameter_arn_prefix}${local.parameter_path}/${name}" if contains(readers, role)],
      role == "nginx" ? [for p in local.tls_parameters : "${local.parameter_arn_prefix}/${trimprefix(p, "/")}"] : [],
    )
  }
  log_group_arn_prefix  = "arn:${data.aws_partition.current.partition}:logs:${local.region}:${data.aws_caller_identity.current.account_id}:log-group:"
  release_parameter_arn = "${local.parameter_arn_prefix}${local.release_parameter}"
  models_bucket_arn     = aws_s3_bucket.this["models"].arn
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  for_each = local.instance_roles

  name               = "${local.name}-${each.key}"
  description        = "${local.name} ${each.key} instances"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json

  tags = { Role = each.key }
}

# What the SSM agent needs for Session Manager and Run Command (the deploy document),
# and nothing else: AmazonSSMManagedInstanceCore would also grant ssm:GetParameter(s)
# on every parameter of the account, secrets of the other roles included.
data "aws_iam_policy_document" "session" {
  #checkov:skip=CKV_AWS_111:the agent's channel and registration actions support no resource-level restriction
  #checkov:skip=CKV_AWS_356:the agent's channel and registration actions support no resource-level restriction
  statement {
    sid = "SsmAgentRegistration"
    actions = [
      "ssm:UpdateInstanceInformation",
      "ssm:ListInstanceAssociations",
      "ssm:DescribeAssociation",
      "ssm:UpdateInstanceAssociationStatus",
      "ssm:GetDocument",
      "ssm:DescribeDocument",
    ]
    resources = ["*"]
  }

  statement {
    sid = "SessionManagerChannels"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }

  statement {
    sid = "RunCommandMessages"
    actions = [
      "ec2messages:AcknowledgeMessage",
      "ec2messages:DeleteMessage",
      "ec2messages:FailMessage",
      "ec2messages:GetEndpoint",
      "ec2messages:GetMessages",
      "ec2messages:SendReply",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "session" {
  name        = "${local.name}-ssm-session"
  description = "${local.name}: Session Manager and Run Command for the instances, without parameter reads"
  policy      = data.aws_iam_policy_document.session.json
}

resource "aws_iam_role_policy_attachment" "session" {
  for_each = local.instance_roles

  role       = aws_iam_role.instance[each.key].name
  policy_arn = aws_iam_policy.session.arn
}

data "aws_iam_policy_document" "instance" {
  for_each = local.instance_roles

  statement {
    sid       = "ReadReleaseParameter"
    actions   = ["ssm:GetParameter"]
    resources = [local.release_parameter_arn]
  }

  statement {
    sid       = "ReadReleases"
    actions   = ["s3:GetObject"]
    resources = ["${local.models_bucket_arn}/releases/*"]
  }

  statement {
    sid       = "DecryptBucketObjects"
    actions   = contains(local.bucket_writers, each.key) ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [local.models_bucket_arn, "${local.models_bucket_arn}/*"]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [for key, group in local.service_log_groups : "${local.log_group_arn_prefix}${local.log_group_prefix}/${key}:*" if group[0] == each.key]
  }

  dynamic "statement" {
    for_each = length(local.role_secrets[each.key]) > 0 ? [1] : []
    content {
      sid       = "ReadOwnSecrets"
      actions   = ["ssm:GetParameter"]
      resources = local.role_secrets[each.key]
    }
  }

  dynamic "statement" {
    for_each = length(local.role_secrets[each.key]) > 0 ? [1] : []
    content {
      sid       = "DecryptOwnSecretsOnly"
      actions   = ["kms:Decrypt"]
      resources = [aws_kms_key.this.arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:PARAMETER_ARN"
        values   = local.role_secrets[each.key]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(local.bucket_readers, each.key) ? [1] : []
    content {
      sid       = "ListModelBucket"
      actions   = ["s3:ListBucket"]
      resources = [local.models_bucket_arn]
    }
  }

  dynamic "statement" {
    for_each = contains(local.bucket_readers, each.key) ? [1] : []
    content {
      sid       = contains(local.bucket_writers, each.key) ? "ReadWriteModels" : "ReadModels"
      actions   = contains(local.bucket_writers, each.key) ? ["s3:GetObject", "s3:PutObject"] : ["s3:GetObject"]
      resources = ["${local.models_bucket_arn}/models/*"]
    }
  }

  # The training data set (datasets.tf): read only, by the trainer only.
  dynamic "statement" {
    for_each = contains(local.dataset_readers, each.key) ? [1] : []
    content {
      sid       = "ReadTrainingData"
      actions   = ["s3:GetObject"]
      resources = [local.dataset_arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "monitoring" ? [1] : []
    content {
      sid       = "PrometheusEc2Discovery"
      actions   = ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"]
      resources = ["*"] # Describe* actions support no resource-level restriction
    }
  }

  dynamic "statement" {
    for_each = each.key == "monitoring" ? [1] : []
    content {
      sid       = "AlertmanagerPublishes"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.alerts.arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "monitoring" ? [1] : []
    content {
      sid       = "EncryptAlertsThroughSns"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [aws_kms_key.this.arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sns.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "instance" {
  for_each = local.instance_roles

  name   = "${local.name}-${each.key}"
  role   = aws_iam_role.instance[each.key].id
  policy = data.aws_iam_policy_document.instance[each.key].json
}

resource "aws_iam_instance_profile" "this" {
  for_each = local.instance_roles

  name = "${local.name}-${each.key}"
  role = aws_iam_role.instance[each.key].name

  tags = { Role = each.key }
}

################################################################################
# VPC flow logs role
################################################################################

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  name               = "${local.name}-vpc-flow-logs"
  description        = "Lets VPC flow logs write to their log group"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "${local.name}-vpc-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}
