# One hardened EC2 instance: IMDSv2 only, encrypted gp3 root volume, EBS-optimised, no
# public address unless it is given an Elastic IP, `Project`/`Role` tags for discovery,
# and optionally a data volume that outlives it.
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
  user_data_base64            = base64gzip(var.user_data) # cloud-init unpacks it; 16 KiB limit
  # The bootstrap runs once, on first boot; a change to it (never a release) re-creates
  # the box, which finds its data volume again.
  user_data_replace_on_change = true

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
    # Root volume only: instance-wide volume_tags would fight the data volume's own tags.
    tags = merge(var.tags, { Name = var.name, Role = var.role })
  }

  tags = merge(var.tags, { Name = var.name, Role = var.role })

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

# The role's state (Redis, the UI's accounts, the TSDB, the data sets) on its own encrypted
# volume: replacing the instance only re-creates the attachment, and the bootstrap mounts
# whatever the volume already holds. Tagged Backup=<backup_tag> for the snapshot plan.
resource "aws_ebs_volume" "data" {
  #checkov:skip=CKV2_AWS_9:selected by its Backup tag in the root's AWS Backup plan (backup.tf), which checkov does not follow into the module
  count = var.data_volume_size == null ? 0 : 1

  availability_zone = var.availability_zone
  size              = var.data_volume_size
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "${var.name}-data", Role = var.role, Backup = var.backup_tag })
}

resource "aws_volume_attachment" "data" {
  count = var.data_volume_size == null ? 0 : 1

  device_name = var.data_device_name
  volume_id   = aws_ebs_volume.data[0].id
  instance_id = aws_instance.this.id

  # Stop the instance's services cleanly before the volume goes (replacement, destroy).
  stop_instance_before_detaching = true
}
