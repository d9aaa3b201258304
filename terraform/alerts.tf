################################################################################
# Alert delivery: Prometheus -> Alertmanager (monitoring box, :9093 on loopback) -> this
# SNS topic -> alert_email (or whatever is subscribed to the alert_topic_arn output).
################################################################################

resource "aws_sns_topic" "alerts" {
  name              = "${local.name}-alerts"
  display_name      = "${local.name} alerts"
  kms_master_key_id = aws_kms_key.this.arn
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alert_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}
