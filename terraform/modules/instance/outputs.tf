output "id" {
  description = "Instance id."
  value       = aws_instance.this.id
}

output "private_ip" {
  description = "Private IPv4 address."
  value       = aws_instance.this.private_ip
}

output "public_ip" {
  description = "Elastic IP address, or null for a private instance."
  value       = var.public ? aws_eip.this[0].public_ip : null
}

output "instance" {
  description = "The whole aws_instance object, for tests and for callers that need more attributes."
  value       = aws_instance.this
}

output "data_volume_id" {
  description = "Id of the data volume, or null without one."
  value       = var.data_volume_size == null ? null : aws_ebs_volume.data[0].id
}
