"""Each role reads only its secrets: the role x parameter table, decided from the final
policies of every role of the applied stack (inline and attached managed policies, as moto
holds them after `terraform apply`) by tests/terraform/iam_eval.py.

A parameter counts as readable when the role may call ssm:GetParameter on it and, for a
SecureString, kms:Decrypt on the project key with the encryption context SSM sends for that
parameter. Both halves are also checked on their own, so neither guard leans on the other.
"""

from __future__ import annotations

import pytest

from tests.terraform.iam_eval import Request, allowed, role_documents

pytestmark = pytest.mark.terraform

REGION = "us-east-1"  # MOTO_VARS
PARAMETERS = ["redis_password", "api_token", "secret_key", "grafana_admin", "release"]
SECURE = {"redis_password", "api_token", "secret_key", "grafana_admin"}

# What each role needs, and nothing more (the README's table says the same).
EXPECTED = {
    "app": {"redis_password", "api_token", "release"},  # Redis, the API's token
    "ui": {"api_token", "secret_key", "release"},  # calls the API, signs sessions
    "ml": {"redis_password", "release"},  # GPU worker on the job queue
    "monitoring": {"grafana_admin", "release"},  # Grafana's admin password
    "nginx": {"release"},  # TLS only from its own parameters, when given
}
TABLE = [(role, p, p in readable) for role, readable in EXPECTED.items() for p in PARAMETERS]


@pytest.fixture(scope="module")
def iam_view(boto):
    """(role -> policy documents, parameter -> ARN, project key ARN) of the applied stack."""
    iam, ssm, kms = boto("iam"), boto("ssm"), boto("kms")
    docs = {role: role_documents(iam, f"pneumonia-{role}") for role in EXPECTED}
    arns = {p: ssm.get_parameter(Name=f"/pneumonia/{p}")["Parameter"]["ARN"] for p in PARAMETERS}
    alias = next(a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/pneumonia")
    key = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
    return docs, arns, key


def may_get(docs, arn) -> bool:
    return allowed(list(docs.values()), Request("ssm:GetParameter", arn))


def may_decrypt(docs, key, arn) -> bool:
    context = {
        "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": arn,
    }
    return allowed(list(docs.values()), Request("kms:Decrypt", key, context))


@pytest.mark.parametrize(("role", "parameter", "expected"), TABLE)
def test_role_reads_exactly_its_parameters(iam_view, role, parameter, expected):
    docs, arns, key = iam_view
    arn = arns[parameter]
    assert may_get(docs[role], arn) is expected, f"{role} ssm:GetParameter {parameter}"
    if parameter in SECURE:
        assert may_decrypt(docs[role], key, arn) is expected, f"{role} kms:Decrypt {parameter}"


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_no_broad_parameter_read(iam_view, role):
    """No role lists or bulk-reads the project's parameters, and none may decrypt outside
    SSM or for a parameter that is not its own."""
    docs, arns, key = iam_view
    path = arns["release"].rsplit("/", 1)[0]
    documents = list(docs[role].values())
    for action in ("ssm:GetParameters", "ssm:GetParametersByPath", "ssm:DescribeParameters"):
        for resource in (path, f"{path}/redis_password", "*"):
            assert not allowed(documents, Request(action, resource)), (role, action, resource)
    assert not allowed(documents, Request("kms:Decrypt", key)), f"{role} decrypts without SSM"
    other = f"{path}/someone_elses_secret"
    assert not may_decrypt(docs[role], key, other), f"{role} decrypts any parameter"
    assert not [n for n in docs[role] if "AmazonSSMManagedInstanceCore" in n], role


def test_evaluator_sees_what_managed_core_policy_would_grant(boto, iam_view):
    """The check can fail: with AWS's AmazonSSMManagedInstanceCore attached (what the stack
    used before), the same evaluation lets every role read every secret."""
    iam = boto("iam")
    arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    core = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    docs, arns, _ = iam_view
    with_core = {**docs["ui"], "managed:AmazonSSMManagedInstanceCore": core}
    assert not may_get(docs["ui"], arns["redis_password"])
    assert may_get(with_core, arns["redis_password"])


# The training data set (terraform/datasets.tf): the trainer reads it; nobody's box writes it.
DATASET_READERS = {"ml"}
DATASET_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]


@pytest.fixture(scope="module")
def dataset_arns(boto):
    """ARNs of a data set image and its manifest, in the applied stack's model bucket."""
    bucket = next(
        b["Name"] for b in boto("s3").list_buckets()["Buckets"] if "-models-" in b["Name"]
    )
    base = f"arn:aws:s3:::{bucket}/datasets/chest_xray"
    return bucket, [f"{base}/MANIFEST.sha256", f"{base}/train/NORMAL/IM-0115-0001.jpeg"]


@pytest.mark.parametrize("action", DATASET_ACTIONS)
@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_only_the_trainer_reads_the_data_set_and_no_box_writes_it(
    iam_view, dataset_arns, role, action
):
    docs, _, key = iam_view
    bucket, arns = dataset_arns
    expected = action == "s3:GetObject" and role in DATASET_READERS
    for arn in arns:
        assert allowed(list(docs[role].values()), Request(action, arn)) is expected, (role, arn)
    if expected:  # the objects are SSE-KMS: reading them needs the key through S3
        context = {
            "kms:ViaService": f"s3.{REGION}.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/datasets/chest_xray/x",
        }
        assert allowed(list(docs[role].values()), Request("kms:Decrypt", key, context))


def test_the_trainer_reads_the_data_set_prefix_only(iam_view, dataset_arns):
    """ml's data set grant covers datasets/chest_xray/*, not the rest of any bucket."""
    docs, _, _ = iam_view
    bucket, _ = dataset_arns
    documents = list(docs["ml"].values())
    grants = [s for d in documents for s in d["Statement"] if s.get("Sid") == "ReadTrainingData"]
    assert [s["Resource"] for s in grants] == [f"arn:aws:s3:::{bucket}/datasets/chest_xray/*"]
    for other in (f"arn:aws:s3:::{bucket}/archive/x.jpeg", "arn:aws:s3:::other/datasets/x"):
        assert not allowed(documents, Request("s3:GetObject", other)), other
