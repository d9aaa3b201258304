################################################################################
# General
################################################################################

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "project" {
  description = "Project name: prefixes resource names and is the `Project` tag Prometheus discovery filters on."
  type        = string
  default     = "pneumonia"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Environment tag (production, staging...): tells a shared account's bills, alerts and backups apart."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment must be 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags added to every resource (cost centre, owner...)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of /24 or larger."
  }
}

variable "public_subnet_cidr" {
  description = "CIDR block of the public subnet (nginx, monitoring, NAT gateway)."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrhost(var.public_subnet_cidr, 0))
    error_message = "public_subnet_cidr must be a valid IPv4 CIDR block."
  }
}

variable "private_subnet_cidrs" {
  description = "CIDR blocks of the two private subnets, one per availability zone (UI, app, ml, monitoring in the first; the scaled workers spread over both; the endpoints in both)."
  type        = list(string)
  default     = ["10.0.2.0/24", "10.0.4.0/24"]

  validation {
    condition     = length(var.private_subnet_cidrs) == 2 && alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs must be two valid IPv4 CIDR blocks (one per availability zone)."
  }
}

variable "private_zone_name" {
  description = "Private Route 53 zone giving every tier a stable name (app.<zone>, ui.<zone>...). Null: <project>.internal."
  type        = string
  default     = null
}

variable "enable_vpc_endpoints" {
  description = "S3 gateway endpoint and interface endpoints for SSM, ssmmessages, ec2messages, KMS and CloudWatch Logs, so AWS API traffic stays off the NAT gateway (interface endpoints cost about 8 USD a month each per zone)."
  type        = bool
  default     = true
}

variable "secondary_public_subnet_cidr" {
  description = "CIDR block of the second public subnet, in another availability zone; only created when enable_alb is true (an ALB needs two zones)."
  type        = string
  default     = "10.0.3.0/24"

  validation {
    condition     = can(cidrhost(var.secondary_public_subnet_cidr, 0))
    error_message = "secondary_public_subnet_cidr must be a valid IPv4 CIDR block."
  }
}

variable "allowed_cidrs" {
  description = "CIDR blocks allowed to reach the web site on 80/443 (the hospital's egress ranges; 0.0.0.0/0 only if the site is meant to be public)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be a non-empty list of valid IPv4 CIDR blocks."
  }
}

variable "admin_cidrs" {
  description = "CIDR blocks of the administrators allowed to open Grafana at https://<site>/grafana/ (through nginx's TLS; no public port). Never the whole internet."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "admin_cidrs must be valid IPv4 CIDR blocks and must not include 0.0.0.0/0."
  }
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a retention period CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, ..., 3653)."
  }
}

################################################################################
# Instances
################################################################################

variable "ami_owners" {
  description = "Owners of the AMI looked up for every instance (099720109477 is Canonical)."
  type        = list(string)
  default     = ["099720109477"]
}

variable "ami_name_filter" {
  description = "Name filter of the Ubuntu AMI (22.04 LTS, amd64, gp3-backed by default). The newest match is used."
  type        = string
  default     = "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-*"
}

variable "ml_ami_id" {
  description = "Optional AMI for the GPU instance (e.g. an AWS Deep Learning Base AMI with the NVIDIA driver). When null the Ubuntu AMI is used and the bootstrap installs the driver."
  type        = string
  default     = null

  validation {
    condition     = var.ml_ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ml_ami_id))
    error_message = "ml_ami_id must look like ami-0123456789abcdef0."
  }
}

variable "instance_types" {
  description = "Instance type per role. Defaults follow the design: t3.micro for nginx, monitoring and UI, t3.medium for the app box (API + Redis + CPU worker), g5.xlarge (one NVIDIA A10G, 24 GB; offered in every eu-west-1 zone) for ml; g6.xlarge (one L4, 24 GB, cheaper) where the zone offers it (not eu-west-1 at the time of writing). The plan fails when the ml subnet's availability zone does not offer the ml type."
  type = object({
    nginx      = optional(string, "t3.micro")
    monitoring = optional(string, "t3.micro")
    ui         = optional(string, "t3.micro")
    app        = optional(string, "t3.medium")
    ml         = optional(string, "g5.xlarge")
    worker     = optional(string, "c6i.large")
  })
  default = {}

  validation {
    condition     = alltrue([for t in values(var.instance_types) : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "Every instance type must look like family.size, e.g. t3.micro."
  }
}

variable "data_volume_sizes" {
  description = "Size in GiB of each role's data volume (encrypted gp3, the project's KMS key, kept when the instance is replaced, backed up): Redis on app and ui, Prometheus, Alertmanager and Grafana on monitoring, the data sets on ml."
  type = object({
    app        = optional(number, 20)
    ui         = optional(number, 10)
    monitoring = optional(number, 50)
    ml         = optional(number, 100)
  })
  default = {}

  validation {
    condition     = alltrue([for s in values(var.data_volume_sizes) : s >= 1 && s <= 4096])
    error_message = "Data volume sizes must be between 1 and 4096 GiB."
  }
}

variable "root_volume_sizes" {
  description = "Root volume size in GiB per role (gp3, encrypted). ml holds the data set, CUDA wheels and checkpoints."
  type = object({
    nginx      = optional(number, 16)
    monitoring = optional(number, 30)
    ui         = optional(number, 20)
    app        = optional(number, 30)
    ml         = optional(number, 150)
    worker     = optional(number, 30)
  })
  default = {}

  validation {
    condition     = alltrue([for s in values(var.root_volume_sizes) : s >= 8 && s <= 2048])
    error_message = "Root volume sizes must be between 8 and 2048 GiB."
  }
}

variable "enable_ml_instance" {
  description = "Create the GPU instance (training + GPU worker). Off leaves the CPU worker on the app box as the only consumer."
  type        = bool
  default     = true
}

variable "ml_idle_stop_minutes" {
  description = "The GPU instance stops itself after this many minutes with no training, no GPU load and no admin session (0 disables). Start it again with `aws ec2 start-instances`."
  type        = number
  default     = 60

  validation {
    condition     = var.ml_idle_stop_minutes >= 0 && var.ml_idle_stop_minutes <= 10080
    error_message = "ml_idle_stop_minutes must be between 0 (disabled) and 10080 (a week)."
  }
}

variable "nvidia_driver" {
  description = "NVIDIA driver installed on the GPU instance by `ubuntu-drivers install --gpgpu`, with its nvidia-utils package (nvidia-smi; ignored when the AMI already has nvidia-smi). It must run the CUDA wheels of requirements/gpu.lock with their full feature set: CUDA 12.9 needs branch 575 or newer, so the R580 production branch (model/README.md, \"The GPU box's software\")."
  type        = string
  default     = "nvidia:580-server"

  validation {
    condition     = can(regex("^nvidia:[0-9]{3}-server$", var.nvidia_driver)) && try(tonumber(regex("[0-9]{3}", var.nvidia_driver)) >= 575, false)
    error_message = "nvidia_driver must name a server branch of at least 575 (the CUDA 12.9 wheels of requirements/gpu.lock), e.g. nvidia:580-server."
  }
}

variable "dcgm_versions" {
  description = "apt versions of NVIDIA's DCGM (datacenter-gpu-manager-4-core) and dcgm-exporter (datacenter-gpu-manager-exporter) on the GPU instance, from NVIDIA's CUDA repository: a pair released together (the exporter's container tag <dcgm>-<exporter> names it). `apt-cache policy datacenter-gpu-manager-exporter` on the box lists what exists."
  type = object({
    dcgm     = string
    exporter = string
  })
  default = {
    dcgm     = "1:4.4.2-1"
    exporter = "4.7.0-1"
  }

  validation {
    condition     = alltrue([for v in values(var.dcgm_versions) : can(regex("^([0-9]+:)?[0-9]+\\.[0-9]+\\.[0-9]+(\\.[0-9]+)?-[0-9]+$", v))])
    error_message = "dcgm_versions are exact apt versions, e.g. 1:4.4.2-1 and 4.7.0-1 (no wildcards: the box installs exactly these)."
  }
}

variable "enable_detailed_monitoring" {
  description = "Enable EC2 detailed (1-minute) CloudWatch monitoring on every instance."
  type        = bool
  default     = true
}

variable "ssh_public_key" {
  description = "Optional SSH public key for break-glass access. Null (the default) creates no key pair: admins use SSM Session Manager."
  type        = string
  default     = null
}

variable "ssh_cidrs" {
  description = "CIDR blocks allowed to SSH (22) to the instances; only used with ssh_public_key. Empty by default."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "ssh_cidrs must be valid IPv4 CIDR blocks and must not include 0.0.0.0/0."
  }
}

################################################################################
# Application
################################################################################

variable "initial_release" {
  description = "Release the first boot installs, as `make release` prints it (<commit>, the artifact is s3://<model bucket>/releases/<commit>.tar.gz with its .sha256). Null: the boxes come up without the application and `make deploy` installs it. Only seeds the release parameter: later releases go through `make deploy`, never through terraform, so they replace no instance."
  type        = string
  default     = null

  validation {
    condition     = var.initial_release == null || can(regex("^[0-9a-f]{7,40}$", var.initial_release))
    error_message = "initial_release must be a commit id as `make release` prints it."
  }
}

variable "server_name" {
  description = "DNS name the site is served under (nginx server_name and the self-signed certificate's CN). `_` accepts any host."
  type        = string
  default     = "_"
}

variable "max_upload_size" {
  description = "Largest request body nginx accepts (nginx size syntax): the API limit of 32 MiB plus the multipart envelope."
  type        = string
  default     = "33m"

  validation {
    condition     = can(regex("^[0-9]+[kKmM]?$", var.max_upload_size))
    error_message = "max_upload_size must be an nginx size such as 30m."
  }
}

variable "tls_certificate_parameter" {
  description = "Optional name of an SSM parameter holding the PEM certificate chain nginx serves. Null: the bootstrap generates a self-signed certificate (replace it, see README)."
  type        = string
  default     = null
}

variable "tls_private_key_parameter" {
  description = "Optional name of an SSM SecureString parameter holding the PEM private key matching tls_certificate_parameter."
  type        = string
  default     = null
}

variable "grafana_admin_password" {
  description = "Grafana admin password. Null (the default) generates one and stores it in SSM Parameter Store (see the grafana_admin_password_parameter output). Never stored in state."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.grafana_admin_password == null || length(coalesce(var.grafana_admin_password, "x")) >= 16
    error_message = "grafana_admin_password must be at least 16 characters."
  }
}

variable "secrets_version" {
  description = "Bump to generate new values for the generated secrets (Redis password, API token, UI secret key, Grafana password); then `make deploy` (or the deploy document with Action=configure) makes every box read them again (README: rotating a secret)."
  type        = number
  default     = 1
}

variable "alert_email" {
  description = "Optional e-mail address subscribed to the alerts SNS topic that Alertmanager publishes to (the address confirms the subscription once). Null: subscribe something else to the alert_topic_arn output."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", var.alert_email))
    error_message = "alert_email must be an e-mail address."
  }
}

variable "log_retention_days" {
  description = "Days the services' logs (journald via the CloudWatch agent, nginx access logs, the bootstrap log) are kept in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

################################################################################
# Storage
################################################################################

variable "enable_backups" {
  description = "Back the data volumes up with AWS Backup (daily, kept backup_retention_days, in a vault encrypted with the project's key)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days each daily snapshot of the data volumes is kept."
  type        = number
  default     = 35

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650
    error_message = "backup_retention_days must be between 1 and 3650."
  }
}

variable "model_noncurrent_days" {
  description = "Days old (non-current) versions of model files are kept in the model bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.model_noncurrent_days >= 1
    error_message = "model_noncurrent_days must be at least 1."
  }
}

variable "enable_archive_bucket" {
  description = "Create an S3 bucket for archiving uploaded X-rays, with lifecycle expiry."
  type        = bool
  default     = false
}

variable "archive_expiration_days" {
  description = "Days after which archived X-rays are deleted (only with enable_archive_bucket)."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_expiration_days >= 1 && var.archive_expiration_days <= 3650
    error_message = "archive_expiration_days must be between 1 and 3650."
  }
}

variable "log_expiration_days" {
  description = "Days S3 access logs are kept."
  type        = number
  default     = 365

  validation {
    condition     = var.log_expiration_days >= 1
    error_message = "log_expiration_days must be at least 1."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete buckets that still hold objects (models, logs). Keep false in production."
  type        = bool
  default     = false
}

################################################################################
# Scaling option
################################################################################

variable "enable_alb" {
  description = "Put an Application Load Balancer (HTTPS, two zones) in front of nginx. Requires alb_certificate_arn."
  type        = bool
  default     = false
}

variable "alb_certificate_arn" {
  description = "ACM certificate ARN for the ALB's HTTPS listener (only with enable_alb)."
  type        = string
  default     = null

  validation {
    condition     = var.alb_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:", var.alb_certificate_arn))
    error_message = "alb_certificate_arn must be an ACM certificate ARN."
  }
}

variable "public_zone_id" {
  description = "Optional public Route 53 hosted zone holding server_name: with it terraform issues an ACM certificate for server_name (DNS-validated; used by the ALB when alb_certificate_arn is null) and points server_name at the ALB or nginx's Elastic IP."
  type        = string
  default     = null
}

variable "enable_worker_asg" {
  description = "Create an Auto Scaling group of CPU inference workers consuming the same Redis stream as the app box."
  type        = bool
  default     = false
}

variable "worker_asg_size" {
  description = "Minimum, desired and maximum size of the worker Auto Scaling group."
  type = object({
    min     = number
    desired = number
    max     = number
  })
  default = { min = 1, desired = 2, max = 6 }

  validation {
    condition     = var.worker_asg_size.min >= 0 && var.worker_asg_size.min <= var.worker_asg_size.desired && var.worker_asg_size.desired <= var.worker_asg_size.max && var.worker_asg_size.max <= 50
    error_message = "worker_asg_size must satisfy 0 <= min <= desired <= max <= 50."
  }
}
