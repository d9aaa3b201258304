################################################################################
# Stable names: a private zone gives every tier a name (app.<zone>, ui.<zone>...) that
# the bootstraps and configs use instead of an address. Replacing a box changes its
# record only: no other box's user_data, hence no other replacement.
#
# Optionally, a public zone (public_zone_id) gets server_name's record and the DNS
# validation of an ACM certificate for it.
################################################################################

resource "aws_route53_zone" "private" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing applies to public zones; this zone is private to the VPC
  #checkov:skip=CKV2_AWS_39:query logging of a private zone would log every service lookup; VPC flow logs record the traffic
  name          = local.zone_name
  comment       = "${local.name}: stable names of the tiers"
  force_destroy = true # holds only the records below, which terraform owns

  vpc {
    vpc_id = aws_vpc.this.id
  }
}

locals {
  private_ips = merge(
    { app = module.app.private_ip, ui = module.ui.private_ip, monitoring = module.monitoring.private_ip, nginx = module.nginx.private_ip },
    var.enable_ml_instance ? { ml = module.ml[0].private_ip } : {},
  )
}

resource "aws_route53_record" "private" {
  #checkov:skip=CKV2_AWS_23:each record holds the private address of its instance (module outputs), which checkov does not follow
  for_each = { for role in keys(local.hostnames) : role => role if role != "ml" || var.enable_ml_instance }

  zone_id = aws_route53_zone.private.zone_id
  name    = local.hostnames[each.key]
  type    = "A"
  ttl     = 30 # short: a replaced box is found again within a minute
  records = [local.private_ips[each.key]]
}

# --- optional public name and certificate ---------------------------------------

locals {
  public_dns = var.public_zone_id != null && var.server_name != "_"
}

resource "aws_acm_certificate" "site" {
  count = local.public_dns ? 1 : 0

  domain_name       = var.server_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = local.public_dns ? { for o in aws_acm_certificate.site[0].domain_validation_options : o.domain_name => o } : {}

  zone_id         = var.public_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  ttl             = 300
  records         = [each.value.resource_record_value]
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "site" {
  count = local.public_dns ? 1 : 0

  certificate_arn         = aws_acm_certificate.site[0].arn
  validation_record_fqdns = [for r in aws_route53_record.certificate_validation : r.fqdn]
}

resource "aws_route53_record" "site" {
  count = local.public_dns ? 1 : 0

  zone_id = var.public_zone_id
  name    = var.server_name
  type    = "A"
  ttl     = var.enable_alb ? null : 300
  records = var.enable_alb ? null : [module.nginx.public_ip]

  dynamic "alias" {
    for_each = var.enable_alb ? [1] : []
    content {
      name                   = aws_lb.this[0].dns_name
      zone_id                = aws_lb.this[0].zone_id
      evaluate_target_health = true
    }
  }
}
