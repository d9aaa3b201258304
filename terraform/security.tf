################################################################################
# Security groups: one per role, rules reference each other
#
# Every rule is one row of the tables below (with its description), so a reviewer reads
# the whole network policy in one place and the tests assert it row by row.
################################################################################

locals {
  roles_enabled = {
    nginx      = true
    monitoring = true
    ui         = true
    app        = true
    ml         = var.enable_ml_instance
    worker     = var.enable_worker_asg
    alb        = var.enable_alb
  }
  security_groups = toset([for role, on in local.roles_enabled : role if on])
  instance_roles  = toset([for role in local.security_groups : role if role != "alb"])

  # NVIDIA dcgm-exporter on the GPU box (the ml bootstrap runs it; prometheus.yml job dcgm).
  dcgm_exporter_port = 9400

  # Prometheus on the monitoring box scrapes these ports, and only it may.
  metrics_ports = {
    nginx  = { 9100 = "node_exporter", 9113 = "nginx exporter" }
    ui     = { 9100 = "node_exporter", 5001 = "UI /metrics" }
    app    = { 9100 = "node_exporter", 5000 = "API /metrics", 9101 = "CPU worker metrics", 9121 = "redis_exporter" }
    ml     = { 9100 = "node_exporter", 9101 = "GPU worker metrics", (local.dcgm_exporter_port) = "dcgm-exporter" }
    worker = { 9100 = "node_exporter", 9101 = "scaled worker metrics" }
  }

  ingress_rules = concat(
    # The public web entry point: nginx, or the load balancer in front of it.
    flatten([for cidr in var.allowed_cidrs : [
      { sg = var.enable_alb ? "alb" : "nginx", port = 80, cidr = cidr, source = null, description = "HTTP from allowed_cidrs (redirected to HTTPS)" },
      { sg = var.enable_alb ? "alb" : "nginx", port = 443, cidr = cidr, source = null, description = "HTTPS from allowed_cidrs" },
    ]]),
    var.enable_alb ? [{ sg = "nginx", port = 443, cidr = null, source = "alb", description = "HTTPS from the load balancer" }] : [],
    # The request path: nginx -> UI -> API, workers -> Redis.
    [
      { sg = "ui", port = 5001, cidr = null, source = "nginx", description = "UI (gunicorn) from nginx" },
      { sg = "app", port = 5000, cidr = null, source = "ui", description = "API (gunicorn) from the UI" },
    ],
    var.enable_ml_instance ? [{ sg = "app", port = 6379, cidr = null, source = "ml", description = "Redis from the GPU worker" }] : [],
    var.enable_worker_asg ? [{ sg = "app", port = 6379, cidr = null, source = "worker", description = "Redis from the scaled CPU workers" }] : [],
    # Metrics, from the monitoring box only.
    flatten([for role, ports in local.metrics_ports : [
      for port, what in ports : { sg = role, port = tonumber(port), cidr = null, source = "monitoring", description = "${what} scraped by Prometheus" }
    ] if local.roles_enabled[role]]),
    # Grafana only through nginx's TLS (https://<site>/grafana/, admin_cidrs checked by
    # nginx); Prometheus and Alertmanager through an SSM port-forward. No public port.
    [{ sg = "monitoring", port = 3000, cidr = null, source = "nginx", description = "Grafana from nginx (served under /grafana/ over TLS)" }],
    # Break-glass SSH, off unless a key and CIDRs are given.
    flatten([for role in local.instance_roles : [
      for cidr in var.ssh_cidrs : { sg = role, port = 22, cidr = cidr, source = null, description = "SSH from ssh_cidrs (break-glass)" }
    ] if var.ssh_public_key != null]),
  )

  # Egress every instance needs: packages, AWS APIs (SSM, S3, KMS, Logs: through the VPC
  # endpoints when enabled, the same port), DNS and time.
  common_egress = [
    { port = 443, protocol = "tcp", cidr = "0.0.0.0/0", description = "HTTPS: AWS APIs (SSM, S3, KMS), git, PyPI and package repositories" },
    { port = 80, protocol = "tcp", cidr = "0.0.0.0/0", description = "HTTP: Ubuntu apt mirrors (packages are signature-checked)" },
    { port = 53, protocol = "udp", cidr = var.vpc_cidr, description = "DNS to the VPC resolver" },
    { port = 53, protocol = "tcp", cidr = var.vpc_cidr, description = "DNS over TCP to the VPC resolver" },
    { port = 123, protocol = "udp", cidr = "169.254.169.123/32", description = "NTP to the Amazon Time Sync Service" },
  ]

  egress_rules = concat(
    flatten([for role in local.instance_roles : [
      for r in local.common_egress : { sg = role, port = r.port, protocol = r.protocol, cidr = r.cidr, target = null, description = r.description }
    ]]),
    [
      { sg = "nginx", port = 5001, protocol = "tcp", cidr = null, target = "ui", description = "nginx to the UI" },
      { sg = "nginx", port = 3000, protocol = "tcp", cidr = null, target = "monitoring", description = "nginx to Grafana" },
      { sg = "ui", port = 5000, protocol = "tcp", cidr = null, target = "app", description = "UI to the API" },
    ],
    var.enable_ml_instance ? [{ sg = "ml", port = 6379, protocol = "tcp", cidr = null, target = "app", description = "GPU worker to Redis" }] : [],
    var.enable_worker_asg ? [{ sg = "worker", port = 6379, protocol = "tcp", cidr = null, target = "app", description = "Scaled worker to Redis" }] : [],
    var.enable_alb ? [{ sg = "alb", port = 443, protocol = "tcp", cidr = null, target = "nginx", description = "Load balancer to nginx" }] : [],
    [for port in distinct(flatten([for role, ports in local.metrics_ports : keys(ports)])) :
      { sg = "monitoring", port = tonumber(port), protocol = "tcp", cidr = var.vpc_cidr, target = null, description = "Prometheus scrapes port ${port} inside the VPC" }
    ],
  )
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:attached through modules/instance, the launch template and the ALB, which checkov does not follow across for_each
  for_each = local.security_groups

  name        = "${local.name}-${each.key}"
  description = "${local.name} ${each.key} tier"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-${each.key}", Role = each.key }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = { for r in local.ingress_rules : "${r.sg}-${r.port}-${coalesce(r.source, r.cidr)}" => r }

  security_group_id            = aws_security_group.this[each.value.sg].id
  description                  = each.value.description
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.source == null ? null : aws_security_group.this[each.value.source].id
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = { for r in local.egress_rules : "${r.sg}-${r.protocol}${r.port}-${coalesce(r.target, r.cidr)}" => r }

  security_group_id            = aws_security_group.this[each.value.sg].id
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.target == null ? null : aws_security_group.this[each.value.target].id
}
