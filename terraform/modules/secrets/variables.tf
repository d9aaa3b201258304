variable "parameter_path" {
  description = "SSM path the parameters are created under, e.g. /pneumonia."
  type        = string
}

variable "secrets" {
  description = "Secret name -> description of the SSM parameter."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key encrypting the SecureString parameters."
  type        = string
}

variable "version_number" {
  description = "Bump to write newly generated values."
  type        = number
  default     = 1
}

variable "overrides" {
  description = "Secret name -> value given by the operator instead of a generated one (null entries are generated)."
  type        = map(string)
  default     = {}
  sensitive   = true
  ephemeral   = true
}
