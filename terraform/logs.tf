################################################################################
# Service logs in CloudWatch Logs: the CloudWatch agent on every box ships the journal
# (through rsyslog's /var/log/syslog, where every unit's output lands), the bootstrap
# and deploy log and, on nginx, the access and error logs. One group per role and
# stream kind, encrypted with the project's key, kept log_retention_days.
################################################################################

locals {
  log_group_prefix = "/${local.name}/hosts"

  # log kind -> file the agent follows (the bootstrap renders the agent config from this)
  log_files = {
    journal   = "/var/log/syslog"
    bootstrap = "/var/log/pneumonia-bootstrap.log"
  }
  nginx_log_files = {
    access = "/var/log/nginx/pneumonia.access.log" # paths only, no query strings (nginx/README.md)
    error  = "/var/log/nginx/error.log"
  }

  service_log_groups = merge(
    { for pair in setproduct(tolist(local.instance_roles), keys(local.log_files)) : "${pair[0]}/${pair[1]}" => pair },
    { for kind in keys(local.nginx_log_files) : "nginx/${kind}" => ["nginx", kind] },
  )
}

resource "aws_cloudwatch_log_group" "service" {
  #checkov:skip=CKV_AWS_338:retention is the operator's choice (log_retention_days, default 365); a shorter one is allowed on purpose for staging
  for_each = local.service_log_groups

  name              = "${local.log_group_prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = { Role = each.value[0] }
}
