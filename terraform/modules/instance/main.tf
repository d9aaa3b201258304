# One hardened EC2 instance: IMDSv2 only, encrypted gp3 root volume, EBS-optimised, no
# public address unless it is given an Elastic IP, `Project`/`Role` tags for discovery.
# Every role of the root configuration is one call of this module, so the hardening is
# written once.

resource "aws_instance" "this" {
  ami                         = var.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = var.security_group_ids
  iam_instance_profile        = var.instance_profile
  key_name                    = var.key_name
  associate_public_ip_address = false
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring
  user_data                   = var.user_data
  user_data_replace_on_change = true # the bootstrap runs on first boot only

  instance_initiated_shutdown_behavior = "stop" # the GPU box powers itself off when idle

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    delete_on_termination = true
  }

  tags        = merge(var.tags, { Name = var.name, Role = var.role })
  volume_tags = merge(var.tags, { Name = var.name, Role = var.role })

  lifecycle {
    # A new Ubuntu release must not replace running servers; re-create one on purpose
    # with `terraform apply -replace=...`.
    ignore_changes = [ami]
  }
}

resource "aws_eip" "this" {
  count = var.public ? 1 : 0

  domain   = "vpc"
  instance = aws_instance.this.id

  tags = merge(var.tags, { Name = var.name, Role = var.role })
}
