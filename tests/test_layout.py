"""The package boundaries that README.md's layout diagram promises, checked on every run.

A boundary that is only drawn erodes: one convenient import of the API from the worker brings
Flask onto every worker host. Each rule reads the real imports (ast), including the ones inside
functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "jobs",
    "observability",
    "devstack",
    "pneumonia_api",
    "pneumonia_web",
    "pneumonia_score",
    "model",
    "bench",
)


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports, relative imports resolved to its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add(path.relative_to(ROOT).parts[0])
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def offenders(packages: tuple[str, ...], forbidden: set[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {sorted(imported_modules(path) & forbidden)}"
        for package in packages
        for path in sources(package)
        if imported_modules(path) & forbidden
    ]


@pytest.mark.parametrize(
    ("packages", "forbidden", "why"),
    [
        (("model", "pneumonia_web"), {"pneumonia_api"}, "workers and UI must not load the API"),
        (
            ("jobs",),
            {"pneumonia_api", "pneumonia_web", "model", "flask"},
            "the contract is neutral",
        ),
        (("pneumonia_web",), {"model", "keras", "tensorflow"}, "the UI never loads a model"),
        (("observability",), {"pneumonia_api", "pneumonia_web", "model"}, "shared by both"),
        (
            ("pneumonia_score",),
            {"pneumonia_api", "pneumonia_web", "model", "jobs", "flask", "redis"},
            "the batch scorer is an API client: HTTP only",
        ),
        (PACKAGES, {"tests"}, "nothing outside tests/ imports tests/"),
    ],
)
def test_package_boundaries(packages, forbidden, why):
    assert offenders(packages, forbidden) == [], why
