terraform {
  # 1.11: write-only arguments (`value_wo`) and ephemeral resources keep the generated
  # secrets out of the state file. `random` is not used: see secrets.tf for why.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100 is the version tested (write-only SSM parameter values, ephemeral
      # Secrets Manager random passwords); 6.x renames arguments this code uses.
      version = ">= 5.100, < 6.0"
    }
  }
}
