################################################################################
# Scaling option (off by default)
#
# enable_alb:        an internet-facing ALB in two zones terminates TLS with an ACM
#                    certificate and forwards HTTPS to nginx, which then only accepts
#                    the ALB and takes the client's address from X-Forwarded-For sent
#                    from the ALB's subnets (nginx real_ip), so rate limits see clients.
# enable_worker_asg: an Auto Scaling group of CPU inference workers consuming the same
#                    Redis stream as the app box's worker (consumer group), spread over
#                    both private zones.
################################################################################

resource "aws_lb" "this" {
  count = var.enable_alb ? 1 : 0

  #checkov:skip=CKV2_AWS_28:ingress is limited to allowed_cidrs (hospital ranges); attach a WAF web ACL if allowed_cidrs is ever 0.0.0.0/0
  #checkov:skip=CKV_AWS_91:optional ALB; nginx on the instance keeps the access log of every request it forwards
  name                       = "${local.name}-web"
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.this["alb"].id]
  subnets                    = [aws_subnet.public.id, aws_subnet.public_secondary[0].id]
  drop_invalid_header_fields = true
  enable_deletion_protection = true

  lifecycle {
    precondition {
      condition     = var.alb_certificate_arn != null || local.public_dns
      error_message = "enable_alb needs alb_certificate_arn (an ACM certificate for the site's name), or public_zone_id and server_name to issue one."
    }
  }
}

resource "aws_lb_target_group" "nginx" {
  count = var.enable_alb ? 1 : 0

  name        = "${local.name}-nginx"
  port        = 443
  protocol    = "HTTPS"
  target_type = "instance"
  vpc_id      = aws_vpc.this.id

  health_check {
    protocol = "HTTPS"
    path     = "/"
    matcher  = "200-399"
  }
}

resource "aws_lb_target_group_attachment" "nginx" {
  count = var.enable_alb ? 1 : 0

  target_group_arn = aws_lb_target_group.nginx[0].arn
  target_id        = module.nginx.id
  port             = 443
}

resource "aws_lb_listener" "https" {
  count = var.enable_alb ? 1 : 0

  load_balancer_arn = aws_lb.this[0].arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = coalesce(var.alb_certificate_arn, try(aws_acm_certificate_validation.site[0].certificate_arn, null))

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.nginx[0].arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  count = var.enable_alb ? 1 : 0

  load_balancer_arn = aws_lb.this[0].arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_launch_template" "worker" {
  count = var.enable_worker_asg ? 1 : 0

  name_prefix            = "${local.name}-worker-"
  image_id               = data.aws_ami.ubuntu.id
  instance_type          = var.instance_types.worker
  key_name               = local.key_name
  vpc_security_group_ids = [aws_security_group.this["worker"].id]
  user_data              = base64gzip(local.user_data_worker)
  ebs_optimized          = true

  iam_instance_profile {
    name = aws_iam_instance_profile.this["worker"].name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  monitoring {
    enabled = var.enable_detailed_monitoring
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_sizes.worker
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.name}-worker", Role = "worker" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${local.name}-worker", Role = "worker" })
  }
}

resource "aws_autoscaling_group" "worker" {
  count = var.enable_worker_asg ? 1 : 0

  name                = "${local.name}-worker"
  min_size            = var.worker_asg_size.min
  desired_capacity    = var.worker_asg_size.desired
  max_size            = var.worker_asg_size.max
  vpc_zone_identifier = aws_subnet.private[*].id # spread over both zones
  health_check_type   = "EC2"

  launch_template {
    id      = aws_launch_template.worker[0].id
    version = aws_launch_template.worker[0].latest_version
  }

  instance_refresh {
    strategy = "Rolling"
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Role = "worker" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  depends_on = [aws_route.private_nat, aws_iam_role_policy.instance]
}
