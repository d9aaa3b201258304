################################################################################
# AMI and optional break-glass key pair
################################################################################

data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = var.ami_owners

  filter {
    name   = "name"
    values = [var.ami_name_filter]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

resource "aws_key_pair" "this" {
  count = var.ssh_public_key == null ? 0 : 1

  key_name   = "${local.name}-break-glass"
  public_key = var.ssh_public_key
}

################################################################################
# Bootstrap scripts: templates/common.sh.tftpl followed by templates/<role>.sh.tftpl
################################################################################

locals {
  key_name    = var.ssh_public_key == null ? null : aws_key_pair.this[0].key_name
  model_store = "s3://${aws_s3_bucket.this["models"].id}/models"

  # The bootstraps address the other tiers by their stable names (dns.tf), never by an
  # address, so one box's user_data never changes when another box is replaced.
  # One local per role (a single map would make every instance depend on every other).
  user_data_app = join("", [
    templatefile("${path.module}/templates/common.sh.tftpl", merge(local.bootstrap_common, { role = "app", data_volume_id = module.app.data_volume_id })),
    templatefile("${path.module}/templates/app.sh.tftpl", { model_store = local.model_store }),
    file("${path.module}/templates/main.sh"),
  ])

  user_data_ui = join("", [
    templatefile("${path.module}/templates/common.sh.tftpl", merge(local.bootstrap_common, { role = "ui", data_volume_id = module.ui.data_volume_id })),
    templatefile("${path.module}/templates/ui.sh.tftpl", {
      api_url = "http://${local.hostnames.app}:5000"
      # nginx is the UI's only client; its address comes from the public subnet.
      trusted_proxies = var.public_subnet_cidr
    }),
    file("${path.module}/templates/main.sh"),
  ])

  user_data_nginx = join("", [
    templatefile("${path.module}/templates/common.sh.tftpl", merge(local.bootstrap_common, { role = "nginx", data_volume_id = "" })),
    templatefile("${path.module}/templates/nginx.sh.tftpl", {
      ui_upstream      = "${local.hostnames.ui}:5001"
      grafana_upstream = "${local.hostnames.monitoring}:3000"
      server_name      = var.server_name
      max_body         = var.max_upload_size
      # stub_status for the exporter on this box (it reads 127.0.0.1:8080) and for the
      # monitoring box's subnet.
      monitoring_cidr           = aws_subnet.private[0].cidr_block
      admin_cidrs               = join(" ", var.admin_cidrs)
      real_ip_from              = var.enable_alb ? join(" ", [var.public_subnet_cidr, var.secondary_public_subnet_cidr]) : ""
      tls_certificate_parameter = coalesce(var.tls_certificate_parameter, "-")
      tls_private_key_parameter = coalesce(var.tls_private_key_parameter, "-")
    }),
    file("${path.module}/templates/main.sh"),
  ])

  user_data_monitoring = join("", [
    templatefile("${path.module}/templates/common.sh.tftpl", merge(local.bootstrap_common, { role = "monitoring", data_volume_id = module.monitoring.data_volume_id })),
    templatefile("${path.module}/templates/monitoring.sh.tftpl", {
      alert_topic_arn = aws_sns_topic.alerts.arn
      server_name     = var.server_name
    }),
    file("${path.module}/templates/main.sh"),
  ])

  user_data_ml = join("", [
    templatefile("${path.module}/templates/common.sh.tftpl", merge(local.bootstrap_common, { role = "ml", data_volume_id = var.enable_ml_instance ? module.ml[0].data_volume_id : "" })),
    templatefile("${path.module}/templates/ml.sh.tftpl", {
      redis_host        = local.hostnames.app
      model_store       = local.model_store
      data_store        = local.dataset_store
      nvidia_driver     = var.nvidia_driver
      idle_stop_minutes = var.ml_idle_stop_minutes
      dcgm_version      = var.dcgm_versions.dcgm
      dcgm_exporter     = var.dcgm_versions.exporter
      dcgm_port         = local.dcgm_exporter_port
    }),
    file("${path.module}/templates/main.sh"),
  ])

  user_data_worker = join("", [
    templatefile("${path.module}/templates/common.sh.tftpl", merge(local.bootstrap_common, { role = "worker", data_volume_id = "" })),
    templatefile("${path.module}/templates/worker.sh.tftpl", {
      redis_host  = local.hostnames.app
      model_store = local.model_store
    }),
    file("${path.module}/templates/main.sh"),
  ])
}

################################################################################
# Instances (modules/instance: IMDSv2, encrypted gp3, EBS-optimised, tags,
# a data volume that outlives the instance). Only nginx is in the public subnet.
################################################################################

module "app" {
  source = "./modules/instance"

  name                = "${local.name}-app"
  role                = "app"
  ami_id              = data.aws_ami.ubuntu.id
  instance_type       = var.instance_types.app
  subnet_id           = aws_subnet.private[0].id
  availability_zone   = aws_subnet.private[0].availability_zone
  data_volume_size    = var.data_volume_sizes.app
  kms_key_arn         = aws_kms_key.this.arn
  backup_tag          = local.name
  security_group_ids  = [aws_security_group.this["app"].id]
  instance_profile    = aws_iam_instance_profile.this["app"].name
  key_name            = local.key_name
  user_data           = local.user_data_app
  root_volume_size    = var.root_volume_sizes.app
  detailed_monitoring = var.enable_detailed_monitoring
  tags                = local.tags

  depends_on = [aws_route.private_nat, aws_iam_role_policy.instance]
}

module "ui" {
  source = "./modules/instance"

  name                = "${local.name}-ui"
  role                = "ui"
  ami_id              = data.aws_ami.ubuntu.id
  instance_type       = var.instance_types.ui
  subnet_id           = aws_subnet.private[0].id
  availability_zone   = aws_subnet.private[0].availability_zone
  data_volume_size    = var.data_volume_sizes.ui
  kms_key_arn         = aws_kms_key.this.arn
  backup_tag          = local.name
  security_group_ids  = [aws_security_group.this["ui"].id]
  instance_profile    = aws_iam_instance_profile.this["ui"].name
  key_name            = local.key_name
  user_data           = local.user_data_ui
  root_volume_size    = var.root_volume_sizes.ui
  detailed_monitoring = var.enable_detailed_monitoring
  tags                = local.tags

  depends_on = [aws_route.private_nat, aws_iam_role_policy.instance]
}

# GPU types are not offered in every zone (g6 is missing from some): fail at plan, naming
# the type and the zone, rather than at launch with InsufficientInstanceCapacity or
# Unsupported. A postcondition of the offerings read, so it is checked as soon as it is read.
data "aws_ec2_instance_type_offerings" "ml" {
  count         = var.enable_ml_instance ? 1 : 0
  location_type = "availability-zone"

  filter {
    name   = "location"
    values = [aws_subnet.private[0].availability_zone]
  }

  filter {
    name   = "instance-type"
    values = [var.instance_types.ml]
  }

  lifecycle {
    postcondition {
      condition     = contains(self.instance_types, var.instance_types.ml)
      error_message = "The ml instance type ${var.instance_types.ml} is not offered in ${aws_subnet.private[0].availability_zone} (the first private subnet's zone). Set instance_types.ml to a type that zone offers (e.g. g5.xlarge or g6.xlarge; `aws ec2 describe-instance-type-offerings --location-type availability-zone --filters Name=location,Values=${aws_subnet.private[0].availability_zone}` lists them), or deploy to a region whose first zone (main.tf, local.azs) offers it."
    }
  }
}

module "ml" {
  source = "./modules/instance"
  count  = var.enable_ml_instance ? 1 : 0

  name                = "${local.name}-ml"
  role                = "ml"
  ami_id              = coalesce(var.ml_ami_id, data.aws_ami.ubuntu.id)
  instance_type       = var.instance_types.ml
  subnet_id           = aws_subnet.private[0].id
  availability_zone   = aws_subnet.private[0].availability_zone
  data_volume_size    = var.data_volume_sizes.ml
  kms_key_arn         = aws_kms_key.this.arn
  backup_tag          = local.name
  security_group_ids  = [aws_security_group.this["ml"].id]
  instance_profile    = aws_iam_instance_profile.this["ml"].name
  key_name            = local.key_name
  user_data           = local.user_data_ml
  root_volume_size    = var.root_volume_sizes.ml
  detailed_monitoring = var.enable_detailed_monitoring
  tags                = local.tags

  depends_on = [aws_route.private_nat, aws_iam_role_policy.instance]
}

module "monitoring" {
  source = "./modules/instance"

  name                = "${local.name}-monitoring"
  role                = "monitoring"
  ami_id              = data.aws_ami.ubuntu.id
  instance_type       = var.instance_types.monitoring
  subnet_id           = aws_subnet.private[0].id
  availability_zone   = aws_subnet.private[0].availability_zone
  data_volume_size    = var.data_volume_sizes.monitoring
  kms_key_arn         = aws_kms_key.this.arn
  backup_tag          = local.name
  security_group_ids  = [aws_security_group.this["monitoring"].id]
  instance_profile    = aws_iam_instance_profile.this["monitoring"].name
  key_name            = local.key_name
  user_data           = local.user_data_monitoring
  root_volume_size    = var.root_volume_sizes.monitoring
  detailed_monitoring = var.enable_detailed_monitoring
  tags                = local.tags

  depends_on = [aws_route.private_nat, aws_iam_role_policy.instance]
}

module "nginx" {
  source = "./modules/instance"

  name                = "${local.name}-nginx"
  role                = "nginx"
  ami_id              = data.aws_ami.ubuntu.id
  instance_type       = var.instance_types.nginx
  subnet_id           = aws_subnet.public.id
  security_group_ids  = [aws_security_group.this["nginx"].id]
  instance_profile    = aws_iam_instance_profile.this["nginx"].name
  key_name            = local.key_name
  user_data           = local.user_data_nginx
  root_volume_size    = var.root_volume_sizes.nginx
  detailed_monitoring = var.enable_detailed_monitoring
  public              = true
  tags                = local.tags

  depends_on = [aws_route.public_internet, aws_iam_role_policy.instance]
}
