################################################################################
# Training data sets
#
# The data set the GPU box trains on lives under datasets/ in the model bucket (KMS,
# versioning, public access block, TLS-only policy and access logs, like the models):
# `make data-upload DATA=<Kermany folder>` puts the images there, then MANIFEST.sha256
# (one sha256 per image, written last). The ml box's training unit syncs it into
# /data/chest_xray with `python -m model.datasets sync`, which checks every file against
# the manifest, before `python -m model.train --recipe gpu`.
#
# Why a prefix of the model bucket rather than a bucket of its own: the same hardening
# and key with nothing new to get wrong; least privilege comes from the policy, not the
# bucket. Only the ml role may read datasets/*; no instance role may write it (operators
# upload with their own credentials). tests/terraform/test_iam_table.py checks both.
################################################################################

locals {
  dataset_prefix = "datasets/chest_xray"
  dataset_store  = "s3://${aws_s3_bucket.this["models"].id}/${local.dataset_prefix}"
  dataset_arn    = "${aws_s3_bucket.this["models"].arn}/${local.dataset_prefix}/*"
  # Roles that read the training data (the trainer's box).
  dataset_readers = toset(["ml"])
}
