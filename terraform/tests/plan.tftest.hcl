# `terraform test` with a mocked AWS provider: no account, no network. Asserts the
# properties the design promises: CIDRs, hardening of every instance, no public address
# on private instances, and the source of every security group rule.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/test" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
  }
  mock_data "aws_ami" {
    defaults = { id = "ami-0123456789abcdef0" }
  }
  mock_data "aws_ec2_instance_type_offerings" {
    defaults = { instance_types = ["g5.xlarge"] }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock-bucket" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/mock" }
  }
  mock_resource "aws_ssm_parameter" {
    defaults = { arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/pneumonia/mock" }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/pneumonia-web/mock" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/pneumonia-nginx/mock" }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0", latest_version = 1 }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/pneumonia/vpc-flow-logs" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/pneumonia-ssm-session" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:pneumonia-alerts" }
  }
  mock_resource "aws_ebs_volume" {
    defaults = { id = "vol-0123456789abcdef0" }
  }
  mock_resource "aws_instance" {
    defaults = { id = "i-0123456789abcdef0", private_ip = "10.0.2.17" }
  }
  mock_resource "aws_acm_certificate" {
    defaults = { arn = "arn:aws:acm:eu-west-1:123456789012:certificate/mock" }
  }
}

variables {
  allowed_cidrs = ["203.0.113.0/24"]
  admin_cidrs   = ["198.51.100.10/32"]
  # An ephemeral variable left unset trips terraform test's plan/apply hand-over (1.11).
  grafana_admin_password = "only-a-test-password"
}

run "defaults" {
  command = apply

  # Network -------------------------------------------------------------------
  assert {
    condition     = aws_vpc.this.cidr_block == "10.0.0.0/16" && aws_subnet.public.cidr_block == "10.0.1.0/24" && aws_subnet.private[*].cidr_block == ["10.0.2.0/24", "10.0.4.0/24"]
    error_message = "VPC and subnet CIDRs must follow the design defaults."
  }
  assert {
    condition     = aws_subnet.private[0].availability_zone != aws_subnet.private[1].availability_zone
    error_message = "The private tiers span two availability zones."
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway" && toset(keys(aws_vpc_endpoint.interface)) == toset(["ssm", "ssmmessages", "ec2messages", "kms", "logs"]) && alltrue([for e in aws_vpc_endpoint.interface : e.private_dns_enabled && length(e.subnet_ids) == 2])
    error_message = "S3 goes through a gateway endpoint; SSM, its channels, KMS and Logs through interface endpoints in both zones."
  }
  assert {
    condition     = module.app.instance.tags["Environment"] == "production" && module.app.instance.tags["Project"] == "pneumonia"
    error_message = "Every resource carries the Project and Environment tags."
  }
  assert {
    condition     = !aws_subnet.public.map_public_ip_on_launch && alltrue([for s in aws_subnet.private : !s.map_public_ip_on_launch])
    error_message = "No subnet may hand out public addresses implicitly."
  }
  assert {
    condition     = aws_route.private_nat.destination_cidr_block == "0.0.0.0/0" && aws_route.private_nat.nat_gateway_id == aws_nat_gateway.this.id
    error_message = "The private subnet must reach the internet through the NAT gateway only."
  }
  assert {
    condition     = aws_flow_log.this.traffic_type == "ALL" && aws_flow_log.this.vpc_id == aws_vpc.this.id
    error_message = "VPC flow logs must record all traffic."
  }
  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "The default security group must have no rules."
  }

  # Instances -----------------------------------------------------------------
  assert {
    condition = alltrue([for i in [module.nginx.instance, module.monitoring.instance, module.ui.instance, module.app.instance, module.ml[0].instance] :
      i.metadata_options[0].http_tokens == "required" && i.root_block_device[0].encrypted && i.root_block_device[0].volume_type == "gp3" && i.ebs_optimized
    ])
    error_message = "Every instance needs IMDSv2, an encrypted gp3 root volume and EBS optimisation."
  }
  assert {
    condition = alltrue([for i in [module.nginx.instance, module.monitoring.instance, module.ui.instance, module.app.instance, module.ml[0].instance] :
      i.associate_public_ip_address == false
    ])
    error_message = "No instance may get an automatic public IP."
  }
  assert {
    condition     = module.ui.public_ip == null && module.app.public_ip == null && module.ml[0].public_ip == null && module.monitoring.public_ip == null
    error_message = "Private instances (monitoring included) must have no public address."
  }
  assert {
    condition = alltrue([for i in [module.ui.instance, module.app.instance, module.ml[0].instance, module.monitoring.instance] :
      i.subnet_id == aws_subnet.private[0].id
    ]) && module.nginx.instance.subnet_id == aws_subnet.public.id
    error_message = "UI, app, ml and monitoring live in the private subnet; only nginx in the public one."
  }
  assert {
    condition     = module.app.instance.tags["Role"] == "app" && module.app.instance.tags["Project"] == "pneumonia" && module.ml[0].instance.tags["Role"] == "ml"
    error_message = "Instances must carry the Project and Role tags Prometheus discovery filters on."
  }
  assert {
    condition     = module.app.instance.instance_type == "t3.medium" && module.ml[0].instance.instance_type == "g5.xlarge" && module.nginx.instance.instance_type == "t3.micro"
    error_message = "Default instance types must follow the design."
  }
  assert {
    condition     = length(aws_key_pair.this) == 0 && length([for k, r in aws_vpc_security_group_ingress_rule.this : k if r.from_port == 22]) == 0
    error_message = "No SSH key and no SSH rule by default."
  }

  # Security group rules: the source of each ------------------------------------
  assert {
    condition     = aws_vpc_security_group_ingress_rule.this["ui-5001-nginx"].referenced_security_group_id == aws_security_group.this["nginx"].id
    error_message = "UI 5001 must be open to nginx only."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.this["app-5000-ui"].referenced_security_group_id == aws_security_group.this["ui"].id
    error_message = "API 5000 must be open to the UI."
  }
  assert {
    condition     = [for k, r in aws_vpc_security_group_ingress_rule.this : r.referenced_security_group_id if r.to_port == 6379] == [aws_security_group.this["ml"].id]
    error_message = "Redis 6379 must be open to the ml instance only."
  }
  assert {
    condition = alltrue([for k, r in aws_vpc_security_group_ingress_rule.this :
      r.referenced_security_group_id == aws_security_group.this["monitoring"].id && r.cidr_ipv4 == null
    if contains([9100, 9101, 9113, 9121, 9400], r.to_port)])
    error_message = "Exporter ports must be open to the monitoring instance only."
  }
  assert {
    condition     = [for k, r in aws_vpc_security_group_ingress_rule.this : k if r.to_port == 9400 || r.from_port == 9400] == ["ml-9400-monitoring"] && aws_vpc_security_group_ingress_rule.this["ml-9400-monitoring"].referenced_security_group_id == aws_security_group.this["monitoring"].id
    error_message = "dcgm-exporter (9400) is open on the ml group, from the monitoring group only."
  }
  assert {
    condition     = data.aws_ec2_instance_type_offerings.ml[0].location_type == "availability-zone" && contains(flatten([for f in data.aws_ec2_instance_type_offerings.ml[0].filter : tolist(f.values) if f.name == "location"]), aws_subnet.private[0].availability_zone)
    error_message = "The ml type's offering is looked up in the ml subnet's availability zone."
  }
  assert {
    condition = alltrue([for k, r in aws_vpc_security_group_ingress_rule.this :
      contains(["ui-5001-nginx", "app-5000-ui"], k) || r.referenced_security_group_id == aws_security_group.this["monitoring"].id
    if contains([5000, 5001], r.to_port)])
    error_message = "API/UI ports: their caller, else the monitoring instance (metrics), nobody else."
  }
  assert {
    condition     = [for k, r in aws_vpc_security_group_ingress_rule.this : k if contains([3000, 9090, 9093], r.to_port)] == ["monitoring-3000-nginx"] && aws_vpc_security_group_ingress_rule.this["monitoring-3000-nginx"].referenced_security_group_id == aws_security_group.this["nginx"].id
    error_message = "Grafana is reachable from nginx only (TLS, /grafana/); Prometheus and Alertmanager from nowhere (SSM port-forward)."
  }
  assert {
    condition = alltrue([for k, r in aws_vpc_security_group_ingress_rule.this :
      r.security_group_id == aws_security_group.this["nginx"].id && contains([80, 443], r.to_port)
    if r.cidr_ipv4 == "203.0.113.0/24"])
    error_message = "allowed_cidrs reach nginx on 80/443 and nothing else."
  }
  assert {
    condition     = alltrue([for k, r in aws_vpc_security_group_ingress_rule.this : r.cidr_ipv4 != "0.0.0.0/0"])
    error_message = "No ingress rule is open to the whole internet unless allowed_cidrs says so."
  }
  assert {
    condition = alltrue(concat(
      [for k, r in aws_vpc_security_group_ingress_rule.this : length(r.description) > 10],
      [for k, r in aws_vpc_security_group_egress_rule.this : length(r.description) > 10],
    ))
    error_message = "Every security group rule must be described."
  }
  assert {
    condition = alltrue([for k, r in aws_vpc_security_group_egress_rule.this :
      r.ip_protocol != "-1" && r.from_port == r.to_port && (r.cidr_ipv4 != "0.0.0.0/0" || contains([80, 443], r.to_port))
    ])
    error_message = "Egress is limited to single ports; only HTTP(S) goes to the internet."
  }

  # Storage and IAM ---------------------------------------------------------------
  assert {
    condition     = aws_s3_bucket_versioning.this["models"].versioning_configuration[0].status == "Enabled"
    error_message = "The model bucket must be versioned."
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this["models"].rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "The model bucket must be KMS-encrypted."
  }
  assert {
    condition     = alltrue([for k, b in aws_s3_bucket_public_access_block.this : b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets])
    error_message = "Every bucket must block public access."
  }
  assert {
    condition     = aws_s3_bucket_logging.this["models"].target_bucket == aws_s3_bucket.logs.id
    error_message = "The model bucket must log access."
  }
  assert {
    condition     = !contains(keys(aws_s3_bucket.this), "archive")
    error_message = "The archive bucket is off by default."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.session) == 5 && alltrue([for a in aws_iam_role_policy_attachment.session : a.policy_arn == aws_iam_policy.session.arn])
    error_message = "Every instance role must allow Session Manager through the project's own session policy."
  }
  assert {
    condition     = !strcontains(aws_iam_policy.session.policy, "ssm:GetParameter") && !strcontains(aws_iam_policy.session.policy, "AmazonSSMManagedInstanceCore")
    error_message = "The session policy reads no parameter."
  }
  assert {
    condition = (
      contains(flatten([for s in data.aws_iam_policy_document.instance["ml"].statement : s.actions]), "s3:PutObject")
      && !contains(flatten([for s in data.aws_iam_policy_document.instance["app"].statement : s.actions]), "s3:PutObject")
      && contains(flatten([for s in data.aws_iam_policy_document.instance["app"].statement : s.actions]), "s3:GetObject")
      && length([for s in data.aws_iam_policy_document.instance["ui"].statement : s.sid if contains(["ReadModels", "ReadWriteModels", "ListModelBucket"], s.sid)]) == 0
      && flatten([for s in data.aws_iam_policy_document.instance["ui"].statement : tolist(s.resources) if s.sid == "ReadReleases"]) == ["arn:aws:s3:::mock-bucket/releases/*"]
      && contains(flatten([for s in data.aws_iam_policy_document.instance["monitoring"].statement : s.actions]), "ec2:DescribeInstances")
      && !contains(flatten([for s in data.aws_iam_policy_document.instance["app"].statement : s.actions]), "ec2:DescribeInstances")
    )
    error_message = "ml writes models, app reads them, the UI reads releases only, only monitoring describes instances."
  }
  assert {
    condition = (
      contains(flatten([for s in data.aws_iam_policy_document.instance["ui"].statement : s.resources if s.sid == "ReadOwnSecrets"]), "arn:aws:ssm:eu-west-1:123456789012:parameter/pneumonia/secret_key")
      && !contains(flatten([for s in data.aws_iam_policy_document.instance["ui"].statement : s.resources if s.sid == "ReadOwnSecrets"]), "arn:aws:ssm:eu-west-1:123456789012:parameter/pneumonia/redis_password")
      && !contains(flatten([for s in data.aws_iam_policy_document.instance["ml"].statement : s.resources if s.sid == "ReadOwnSecrets"]), "arn:aws:ssm:eu-west-1:123456789012:parameter/pneumonia/api_token")
    )
    error_message = "Each role reads only its own secrets (the UI never sees the Redis password)."
  }
  assert {
    condition     = alltrue([for p in module.secrets.parameters : p.type == "SecureString" && p.value_wo == null && p.key_id == aws_kms_key.this.arn])
    error_message = "Secrets are SecureStrings written through value_wo, never held in state."
  }

  # Bootstraps: stable names wired, no address, no release, no secret in user_data --
  assert {
    condition     = strcontains(local.user_data_ui, "http://app.pneumonia.internal:5000") && strcontains(local.user_data_nginx, "ui.pneumonia.internal:5001") && strcontains(local.user_data_ml, "readonly REDIS_HOST=\"app.pneumonia.internal\"")
    error_message = "The tiers find each other by their names in the private zone."
  }
  assert {
    condition     = alltrue([for u in [local.user_data_app, local.user_data_ui, local.user_data_ml, local.user_data_nginx, local.user_data_monitoring] : !strcontains(u, module.app.private_ip) && !strcontains(u, module.ui.private_ip)])
    error_message = "No bootstrap carries another box's address (replacing one box must touch no other)."
  }
  assert {
    condition     = aws_route53_record.private["app"].records == toset([module.app.private_ip]) && aws_route53_record.private["app"].name == "app.pneumonia.internal"
    error_message = "The private zone names each tier."
  }
  assert {
    condition     = alltrue([for m in [module.app, module.ui, module.monitoring, module.ml[0]] : m.data_volume_id != null])
    error_message = "app, ui, monitoring and ml keep their state on a data volume."
  }
  assert {
    condition     = one(aws_backup_selection.data_volumes[0].selection_tag).key == "Backup" && one(aws_backup_selection.data_volumes[0].selection_tag).value == "pneumonia" && one(aws_backup_plan.this[0].rule).lifecycle[0].delete_after == 35
    error_message = "The data volumes are selected by tag for daily snapshots kept 35 days."
  }
  assert {
    condition     = alltrue([for g in aws_cloudwatch_log_group.service : g.retention_in_days == 365 && g.kms_key_id == aws_kms_key.this.arn]) && contains(keys(aws_cloudwatch_log_group.service), "app/journal") && contains(keys(aws_cloudwatch_log_group.service), "nginx/access")
    error_message = "Service logs go to encrypted log groups with a retention."
  }
  assert {
    condition     = aws_ssm_parameter.release.value == "none" && strcontains(aws_ssm_document.deploy.content, "/usr/local/sbin/pneumonia-host")
    error_message = "Releases go through the release parameter and the deploy document."
  }
  assert {
    condition     = strcontains(local.user_data_monitoring, "--production --project \"$PROJECT\"") && strcontains(local.user_data_monitoring, "readonly PROJECT=\"pneumonia\"")
    error_message = "The monitoring bootstrap renders the project's tag into prometheus.yml."
  }
  assert {
    condition     = alltrue([for u in [local.user_data_app, local.user_data_ui, local.user_data_ml, local.user_data_nginx, local.user_data_monitoring, local.user_data_worker] : length(base64gzip(u)) < 16384])
    error_message = "user_data (gzipped, then base64) must stay under EC2's 16 KiB limit."
  }
}

run "options_on" {
  command = apply

  variables {
    enable_alb            = true
    alb_certificate_arn   = "arn:aws:acm:eu-west-1:123456789012:certificate/mock"
    enable_worker_asg     = true
    enable_archive_bucket = true
    ssh_public_key        = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockKeyForTestsOnly test"
    ssh_cidrs             = ["198.51.100.0/28"]
    enable_ml_instance    = false
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.this["nginx-443-alb"].referenced_security_group_id == aws_security_group.this["alb"].id && !contains(keys(aws_vpc_security_group_ingress_rule.this), "nginx-443-203.0.113.0/24")
    error_message = "With the ALB, nginx accepts HTTPS from the ALB only."
  }
  assert {
    condition     = strcontains(local.user_data_nginx, "readonly REAL_IP_FROM=\"10.0.1.0/24 10.0.3.0/24\"")
    error_message = "Behind the ALB, nginx takes the client address from the ALB's subnets."
  }
  assert {
    condition     = length(aws_autoscaling_group.worker[0].vpc_zone_identifier) == 2
    error_message = "The worker group spreads over both private zones."
  }
  assert {
    condition     = aws_lb_listener.http_redirect[0].default_action[0].redirect[0].protocol == "HTTPS" && aws_lb.this[0].drop_invalid_header_fields
    error_message = "The ALB redirects HTTP to HTTPS and drops invalid headers."
  }
  assert {
    condition     = aws_launch_template.worker[0].metadata_options[0].http_tokens == "required" && aws_launch_template.worker[0].block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "Scaled workers are hardened like the other instances."
  }
  assert {
    condition     = [for k, r in aws_vpc_security_group_ingress_rule.this : r.referenced_security_group_id if r.to_port == 6379] == [aws_security_group.this["worker"].id]
    error_message = "Redis is open to the scaled workers (and the ml instance is off)."
  }
  assert {
    condition     = length([for k, r in aws_vpc_security_group_ingress_rule.this : k if r.to_port == 22 && r.cidr_ipv4 == "198.51.100.0/28"]) == 5
    error_message = "Break-glass SSH opens 22 from ssh_cidrs on each instance role."
  }
  assert {
    condition     = contains([for r in aws_s3_bucket_lifecycle_configuration.this["archive"].rule : r.id], "expire-archived-xrays")
    error_message = "The archive bucket expires X-rays."
  }
}

run "rejects_admin_cidrs_open_to_the_world" {
  command = plan

  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.admin_cidrs]
}

run "rejects_invalid_cidr" {
  command = plan

  variables {
    vpc_cidr = "10.0.0.0/33"
  }

  expect_failures = [var.vpc_cidr]
}

run "rejects_alb_without_certificate" {
  command = plan

  variables {
    enable_alb = true
  }

  expect_failures = [aws_lb.this]
}

run "rejects_ml_type_not_offered_in_the_zone" {
  command = plan

  variables {
    instance_types = { ml = "g5.xlarge" }
  }

  override_data {
    target = data.aws_ec2_instance_type_offerings.ml[0]
    values = { instance_types = [] }
  }

  expect_failures = [data.aws_ec2_instance_type_offerings.ml]
}

run "rejects_nvidia_driver_older_than_cuda_12" {
  command = plan

  variables {
    nvidia_driver = "nvidia:470-server"
  }

  expect_failures = [var.nvidia_driver]
}
