data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:the first zone is pinned in the subnets once created; a zone AWS adds later sorts after it and never moves them
  state = "available"
}

locals {
  name   = var.project
  region = var.region

  tags = merge(var.tags, {
    Project   = var.project
    ManagedBy = "terraform"
  })

  azs = slice(data.aws_availability_zones.available.names, 0, 2)

  # Everything the bootstraps need to find each other: private addresses, parameter
  # names (never the secret values) and the repository to deploy.
  bootstrap_common = {
    project        = var.project
    repo_url       = var.repo_url
    repo_ref       = var.repo_ref
    parameter_path = local.parameter_path
    region         = local.region
  }
}
