output "https_url" {
  description = "URL of the web site (the ALB when enabled, else nginx's Elastic IP; point your DNS name at it)."
  value       = local.public_dns ? "https://${var.server_name}" : var.enable_alb ? "https://${aws_lb.this[0].dns_name}" : "https://${module.nginx.public_ip}"
}

output "nginx_public_ip" {
  description = "Elastic IP of the nginx instance (the DNS A record of server_name)."
  value       = module.nginx.public_ip
}

output "grafana_url" {
  description = "Grafana, through nginx's TLS, for addresses in admin_cidrs (user admin, password: grafana_admin_password_command)."
  value       = "${local.public_dns ? "https://${var.server_name}" : var.enable_alb ? "https://${aws_lb.this[0].dns_name}" : "https://${module.nginx.public_ip}"}/grafana/"
}

output "prometheus_port_forward_command" {
  description = "Prometheus has no public port: this SSM port-forward opens it on http://localhost:9090 (9093 for Alertmanager likewise)."
  value       = "aws ssm start-session --region ${local.region} --target ${module.monitoring.id} --document-name AWS-StartPortForwardingSession --parameters portNumber=9090,localPortNumber=9090"
}

output "instance_ids" {
  description = "Instance id per role."
  value = merge(
    { nginx = module.nginx.id, monitoring = module.monitoring.id, ui = module.ui.id, app = module.app.id },
    var.enable_ml_instance ? { ml = module.ml[0].id } : {},
  )
}

output "private_ips" {
  description = "Private IPv4 address per role (for reading logs; configs use the hostnames)."
  value       = local.private_ips
}

output "hostnames" {
  description = "Stable private DNS name per role (private Route 53 zone), which the bootstraps and configs use."
  value       = { for role, ip in local.private_ips : role => local.hostnames[role] }
}

output "data_volume_ids" {
  description = "Data volume per role: kept when the instance is replaced, snapshotted by AWS Backup."
  value = merge(
    { app = module.app.data_volume_id, ui = module.ui.data_volume_id, monitoring = module.monitoring.data_volume_id },
    var.enable_ml_instance ? { ml = module.ml[0].data_volume_id } : {},
  )
}

output "release_store" {
  description = "Where `make release` uploads artifacts (s3://<model bucket>/releases)."
  value       = local.release_store
}

output "release_parameter" {
  description = "SSM parameter naming the release every box runs (written by make deploy)."
  value       = local.release_parameter
}

output "deploy_document" {
  description = "SSM document `make deploy` runs on each tier in turn."
  value       = aws_ssm_document.deploy.name
}

output "deploy_order" {
  description = "Tiers in the order make deploy rolls them."
  value       = local.deploy_order
}

output "alert_topic_arn" {
  description = "SNS topic Alertmanager publishes alerts to (subscribe e-mail, chat or paging to it)."
  value       = aws_sns_topic.alerts.arn
}

output "region" {
  description = "AWS region of the stack (for make release / make deploy)."
  value       = local.region
}

output "project" {
  description = "Project name (the Project tag)."
  value       = var.project
}

output "ssm_session_commands" {
  description = "How to open a shell on each instance with SSM Session Manager (no SSH, no open port; needs the session-manager-plugin)."
  value = merge(
    { for role, id in { nginx = module.nginx.id, monitoring = module.monitoring.id, ui = module.ui.id, app = module.app.id } :
    role => "aws ssm start-session --region ${local.region} --target ${id}" },
    var.enable_ml_instance ? { ml = "aws ssm start-session --region ${local.region} --target ${module.ml[0].id}" } : {},
  )
}

output "model_bucket" {
  description = "Name of the S3 bucket holding the published models."
  value       = aws_s3_bucket.this["models"].id
}

output "model_store" {
  description = "MODEL_STORE the services use (s3://<model bucket>/models)."
  value       = local.model_store
}

output "dataset_store" {
  description = "Where `make data-upload` puts the training data set and the ml box's training unit syncs it from (s3://<model bucket>/datasets/chest_xray)."
  value       = local.dataset_store
}

output "archive_bucket" {
  description = "Name of the X-ray archive bucket, or null when enable_archive_bucket is false."
  value       = var.enable_archive_bucket ? aws_s3_bucket.this["archive"].id : null
}

output "access_log_bucket" {
  description = "Name of the bucket receiving S3 server access logs."
  value       = aws_s3_bucket.logs.id
}

output "secret_parameters" {
  description = "Names of the SSM SecureString parameters holding the generated secrets (values are never in state)."
  value       = module.secrets.names
}

output "grafana_admin_password_command" {
  description = "Command printing the Grafana admin password (needs ssm:GetParameter and kms:Decrypt)."
  value       = "aws ssm get-parameter --region ${local.region} --with-decryption --name ${module.secrets.names["grafana_admin"]} --query Parameter.Value --output text"
}

output "nat_public_ip" {
  description = "Public address the private instances reach the internet from (for allowlists on the repository host)."
  value       = aws_eip.nat.public_ip
}

output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "worker_asg_name" {
  description = "Name of the worker Auto Scaling group, or null when enable_worker_asg is false."
  value       = var.enable_worker_asg ? aws_autoscaling_group.worker[0].name : null
}
