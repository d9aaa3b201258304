data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:the first two zones are pinned in the subnets once created; a zone AWS adds later sorts after them and never moves them
  state = "available"
}

locals {
  name   = var.project
  region = var.region

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  azs = slice(data.aws_availability_zones.available.names, 0, 2)

  # Stable names of the tiers (dns.tf): the bootstraps and configs use these, never an
  # address, so replacing one box touches no other.
  zone_name = coalesce(var.private_zone_name, "${local.name}.internal")
  hostnames = { for role in ["app", "ui", "ml", "monitoring", "nginx"] : role => "${role}.${local.zone_name}" }

  # What every bootstrap needs: parameter names (never the secret values), where releases
  # live, and the stable names. Nothing here changes with a release (releases.tf), so a
  # new release replaces no instance.
  bootstrap_common = {
    project           = var.project
    parameter_path    = local.parameter_path
    release_parameter = local.release_parameter
    release_store     = local.release_store
    region            = local.region
    log_group_prefix  = local.log_group_prefix
  }
}
