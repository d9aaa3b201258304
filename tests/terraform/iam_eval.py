"""A small evaluator of IAM identity policies, for asking "may this role do this?" offline.

moto stores the policies but does not decide with them, and AWS's policy simulator needs an
account. This follows the documented evaluation logic for identity policies of one principal:
an explicit Deny wins, else any Allow, else denied. Actions and resources match with IAM's
wildcards (`*`, `?`), NotAction/NotResource are honoured, and the condition operators used in
this project are implemented; any other operator raises instead of guessing, so a policy
this evaluator does not understand fails the test rather than passing it.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from urllib.parse import unquote


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _wild(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM wildcard match: `*` any run of characters, `?` one character, nothing else."""
    pattern = pattern.replace("[", "[[]")  # brackets are literal in IAM
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(operator: str, key: str, wanted, context: dict) -> bool:
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    if key not in context:
        return if_exists
    actual = _listed(context[key])
    wanted = [str(w) for w in _listed(wanted)]
    if op in ("StringEquals", "ArnEquals"):
        return any(a in wanted for a in actual)
    if op == "StringEqualsIgnoreCase":
        return any(a.lower() in [w.lower() for w in wanted] for a in actual)
    if op in ("StringLike", "ArnLike"):
        return any(_wild(w, a) for a in actual for w in wanted)
    if op == "StringNotEquals":
        return all(a not in wanted for a in actual)
    if op == "Bool":
        return any(str(a).lower() in [w.lower() for w in wanted] for a in actual)
    raise NotImplementedError(f"condition operator {operator} is not implemented here")


@dataclass
class Request:
    """One API call as IAM sees it: the action, the resource ARN and the request context."""

    action: str
    resource: str
    context: dict = field(default_factory=dict)


def _statement_applies(stmt: dict, req: Request) -> bool:
    if "Action" in stmt:
        if not any(_wild(a, req.action, False) for a in _listed(stmt["Action"])):
            return False
    elif any(_wild(a, req.action, False) for a in _listed(stmt["NotAction"])):
        return False
    if "Resource" in stmt:
        if not any(_wild(r, req.resource) for r in _listed(stmt["Resource"])):
            return False
    elif any(_wild(r, req.resource) for r in _listed(stmt["NotResource"])):
        return False
    for operator, keys in stmt.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, req.context):
                return False
    return True


def allowed(documents: list[dict], req: Request) -> bool:
    """Whether the policy documents of one principal allow ``req``."""
    statements = [s for d in documents for s in _listed(d["Statement"])]
    matching = [s for s in statements if _statement_applies(s, req)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _document(raw) -> dict:
    """A policy document as IAM returns it (dict, JSON, or URL-encoded JSON)."""
    if isinstance(raw, dict):
        return raw
    text = unquote(raw) if raw.lstrip().startswith("%") else raw
    return json.loads(text)


def role_documents(iam, role: str) -> dict[str, dict]:
    """Every policy in force for ``role``: inline ones and attached managed ones (AWS's own
    included), by name. This is the whole identity side of what the role may do."""
    docs = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        docs[f"inline:{name}"] = _document(
            iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        )
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        arn = attached["PolicyArn"]
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        docs[f"managed:{attached['PolicyName']}"] = _document(
            iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        )
    return docs
