output "arns" {
  description = "Secret name -> ARN of its SSM parameter."
  value       = { for k, p in aws_ssm_parameter.this : k => p.arn }
}

output "names" {
  description = "Secret name -> name of its SSM parameter."
  value       = { for k, p in aws_ssm_parameter.this : k => p.name }
}

output "parameters" {
  description = "The aws_ssm_parameter objects (their values are write-only and read back as null)."
  value       = aws_ssm_parameter.this
}
