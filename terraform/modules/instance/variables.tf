variable "name" {
  description = "Name tag of the instance."
  type        = string
}

variable "role" {
  description = "Role tag (nginx, monitoring, ui, app, ml): what Prometheus discovery and the bootstrap key on."
  type        = string
}

variable "ami_id" {
  description = "AMI to boot."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
}

variable "subnet_id" {
  description = "Subnet to launch into."
  type        = string
}

variable "security_group_ids" {
  description = "Security groups of the instance."
  type        = list(string)
}

variable "instance_profile" {
  description = "Name of the IAM instance profile."
  type        = string
}

variable "key_name" {
  description = "Optional EC2 key pair name (break-glass SSH); null for none."
  type        = string
  default     = null
}

variable "user_data" {
  description = "Bootstrap script run by cloud-init on first boot."
  type        = string
}

variable "root_volume_size" {
  description = "Root volume size in GiB."
  type        = number
}

variable "detailed_monitoring" {
  description = "Enable EC2 detailed monitoring."
  type        = bool
  default     = true
}

variable "public" {
  description = "Give the instance an Elastic IP (only for instances in the public subnet)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to the instance, its volumes and its Elastic IP."
  type        = map(string)
  default     = {}
}

variable "availability_zone" {
  description = "Availability zone of the subnet (where the data volume is created)."
  type        = string
  default     = null
}

variable "data_volume_size" {
  description = "Size in GiB of a separate data volume that survives the instance; null for none."
  type        = number
  default     = null
}

variable "data_device_name" {
  description = "Device name the data volume is attached as (on Nitro instances it appears as an NVMe disk whose serial is the volume id)."
  type        = string
  default     = "/dev/sdf"
}

variable "kms_key_arn" {
  description = "KMS key encrypting the data volume."
  type        = string
  default     = null
}

variable "backup_tag" {
  description = "Value of the Backup tag of the data volume, which the snapshot plan selects on."
  type        = string
  default     = "none"
}
