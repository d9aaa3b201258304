################################################################################
# Instance roles: one per role, least privilege
#
# all        SSM Session Manager (AmazonSSMManagedInstanceCore), its own parameters
# app        reads the model bucket
# ml         reads and writes the model bucket
# worker     reads the model bucket
# monitoring ec2:DescribeInstances for Prometheus service discovery
# nginx      the TLS certificate parameters, when given
################################################################################

locals {
  bucket_readers = toset(["app", "ml", "worker"])
  bucket_writers = toset(["ml"])

  tls_parameters = compact([var.tls_certificate_parameter, var.tls_private_key_parameter])

  parameter_arn_prefix = "arn:${data.aws_partition.current.partition}:ssm:${local.region}:${data.aws_caller_identity.current.account_id}:parameter"

  # role -> ARNs of the SSM parameters it may read (built from the names, so that the
  # policy reads the same in a plan as in the account)
  role_parameters = {
    for role in local.instance_roles : role => concat(
      [for name, readers in local.secret_readers : "${local.parameter_arn_prefix}${local.parameter_path}/${name}" if contains(readers, role)],
      role == "nginx" ? [for p in local.tls_parameters : "${local.parameter_arn_prefix}/${trimprefix(p, "/")}"] : [],
    )
  }
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

resource "aws_iam_role_policy_attachment" "ssm_core" {
  for_each = local.instance_roles

  role       = aws_iam_role.instance[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "instance" {
  for_each = local.instance_roles

  dynamic "statement" {
    for_each = length(local.role_parameters[each.key]) > 0 ? [1] : []
    content {
      sid       = "ReadOwnParameters"
      actions   = ["ssm:GetParameter"]
      resources = local.role_parameters[each.key]
    }
  }

  dynamic "statement" {
    for_each = length(local.role_parameters[each.key]) > 0 || contains(local.bucket_readers, each.key) ? [1] : []
    content {
      sid       = "DecryptThroughSsmAndS3"
      actions   = contains(local.bucket_writers, each.key) ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
      resources = [aws_kms_key.this.arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com", "s3.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(local.bucket_readers, each.key) ? [1] : []
    content {
      sid       = "ListModelBucket"
      actions   = ["s3:ListBucket"]
      resources = [aws_s3_bucket.this["models"].arn]
    }
  }

  dynamic "statement" {
    for_each = contains(local.bucket_readers, each.key) ? [1] : []
    content {
      sid       = contains(local.bucket_writers, each.key) ? "ReadWriteModels" : "ReadModels"
      actions   = contains(local.bucket_writers, each.key) ? ["s3:GetObject", "s3:PutObject"] : ["s3:GetObject"]
      resources = ["${aws_s3_bucket.this["models"].arn}/*"]
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
}

resource "aws_iam_role_policy" "instance" {
  # nginx with a self-signed certificate needs nothing beyond Session Manager.
  for_each = toset([for role in local.instance_roles : role if
    length(local.role_parameters[role]) > 0 || contains(local.bucket_readers, role) || role == "monitoring"
  ])

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
