################################################################################
# KMS key for the project's data at rest (model bucket, X-ray archive, SSM secrets,
# flow logs). S3 access logs cannot be written to a KMS-encrypted bucket, so the log
# bucket alone uses SSE-S3.
################################################################################

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:a key policy; "*" is this key, and the account-root statement is AWS's default key policy (IAM decides)
  #checkov:skip=CKV_AWS_111:a key policy; "*" is this key, and the account-root statement is AWS's default key policy (IAM decides)
  #checkov:skip=CKV_AWS_356:a key policy; "*" is this key and cannot be narrowed further
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" is this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsFlowLogs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${local.region}:${data.aws_caller_identity.current.account_id}:log-group:/${local.name}/*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${local.name}: model bucket, archive, secrets and flow logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# Buckets
################################################################################

locals {
  bucket_suffix = "${data.aws_caller_identity.current.account_id}-${local.region}"
  buckets = merge(
    { models = "${local.name}-models-${local.bucket_suffix}" },
    var.enable_archive_bucket ? { archive = "${local.name}-xray-archive-${local.bucket_suffix}" } : {},
  )
}

# Server access logs of the data buckets.
resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to SSE-S3 buckets, not SSE-KMS
  #checkov:skip=CKV_AWS_144:access logs are kept in the region of the data they describe; no replica needed
  #checkov:skip=CKV2_AWS_62:nothing consumes events of the log bucket
  #checkov:skip=CKV_AWS_18:this is the access-log bucket; logging it into itself would loop
  bucket        = "${local.name}-access-logs-${local.bucket_suffix}"
  force_destroy = var.force_destroy_buckets

  tags = { Name = "${local.name}-access-logs" }
}

# Model files and, optionally, archived X-rays: one definition, hardened alike.
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:single-region design; models are reproducible by training, X-rays expire; versioning covers mistakes
  #checkov:skip=CKV2_AWS_62:nothing consumes bucket events; the workers read the model store's current pointer
  for_each = local.buckets

  bucket        = each.value
  force_destroy = var.force_destroy_buckets

  tags = { Name = each.value }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = merge(aws_s3_bucket.this, { logs = aws_s3_bucket.logs })

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = merge(aws_s3_bucket.this, { logs = aws_s3_bucket.logs })

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = merge(aws_s3_bucket.this, { logs = aws_s3_bucket.logs })

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256" # the only encryption S3 server access logging supports
    }
  }
}

resource "aws_s3_bucket_logging" "this" {
  for_each = aws_s3_bucket.this

  bucket        = each.value.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "${each.key}/"

  depends_on = [aws_s3_bucket_policy.this] # the log bucket must admit the logging service first
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.model_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = each.key == "archive" ? [1] : []
    content {
      id     = "expire-archived-xrays"
      status = "Enabled"
      filter {}
      expiration {
        days = var.archive_expiration_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  for_each = merge(aws_s3_bucket.this, { logs = aws_s3_bucket.logs })

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "logs" ? [1] : []
    content {
      sid       = "S3ServerAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${each.value.arn}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = merge(aws_s3_bucket.this, { logs = aws_s3_bucket.logs })

  bucket = each.value.id
  policy = data.aws_iam_policy_document.bucket[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}
