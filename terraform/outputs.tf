output "https_url" {
  description = "URL of the web site (the ALB when enabled, else nginx's Elastic IP; point your DNS name at it)."
  value       = var.enable_alb ? "https://${aws_lb.this[0].dns_name}" : "https://${module.nginx.public_ip}"
}

output "nginx_public_ip" {
  description = "Elastic IP of the nginx instance (the DNS A record of server_name)."
  value       = module.nginx.public_ip
}

output "grafana_url" {
  description = "Grafana, reachable from admin_cidrs only (user admin, password in the grafana_admin_password_parameter SSM parameter)."
  value       = "http://${module.monitoring.public_ip}:3000"
}

output "prometheus_url" {
  description = "Prometheus, reachable from admin_cidrs only."
  value       = "http://${module.monitoring.public_ip}:9090"
}

output "instance_ids" {
  description = "Instance id per role."
  value = merge(
    { nginx = module.nginx.id, monitoring = module.monitoring.id, ui = module.ui.id, app = module.app.id },
    var.enable_ml_instance ? { ml = module.ml[0].id } : {},
  )
}

output "private_ips" {
  description = "Private IPv4 address per role."
  value = merge(
    { nginx = module.nginx.private_ip, monitoring = module.monitoring.private_ip, ui = module.ui.private_ip, app = module.app.private_ip },
    var.enable_ml_instance ? { ml = module.ml[0].private_ip } : {},
  )
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
