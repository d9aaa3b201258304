"""The per-role lock files (requirements/<role>.lock, `make lock`) against pyproject.toml, each
other and the environment the tests run in.

A host installs exactly its role's lock with ``pip install --require-hashes``: a line without a
hash or a range instead of a pin would fail there, on the box, at deploy time. These checks make
it fail here instead, and keep one promise of issue 14: what is tested is what ships, one set of
versions on every host, one TensorFlow build per host.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from scripts.locks import (
    MARKER_ENVIRONMENT,
    ROLES,
    ROOT,
    canonical,
    inputs_digest,
    parse_lock,
    pins,
    recorded_digest,
)
from tests.test_layout import PACKAGES, imported_modules

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
LOCKS = {name: pins(role.path) for name, role in ROLES.items()}
CUDA_LIBRARIES = ("nvidia-cudnn-cu", "nvidia-cublas-cu")


@pytest.mark.parametrize("role", ROLES)
def test_every_line_is_an_exact_pin_with_a_hash(role):
    """`pip install --require-hashes` refuses a file where any requirement is not ``==`` with a
    sha256: each line is one here."""
    found = parse_lock(ROLES[role].path.read_text())
    assert found, f"requirements/{role}.lock pins nothing"
    hashed = [p for p in found if p.hashes and all(SHA256.fullmatch(h) for h in p.hashes)]
    bad = [p.line for p in found if not p.version or p not in hashed]
    assert bad == [], f"requirements/{role}.lock: not `name==version --hash=sha256:...`: {bad}"
    names = [p.name for p in found]
    assert len(names) == len(set(names)), f"requirements/{role}.lock pins a package twice"


def test_one_tensorflow_build_per_role():
    """CPU roles get tensorflow-cpu, the GPU role tensorflow with its CUDA wheels at the same
    version, the UI no TensorFlow at all; never two builds in one lock."""
    for role in ("cpu", "dev"):
        assert "tensorflow-cpu" in LOCKS[role], role
        assert "tensorflow" not in LOCKS[role], f"{role}.lock has the CUDA build too"
    gpu = LOCKS["gpu"]
    assert "tensorflow-cpu" not in gpu, (
        "gpu.lock has tensorflow-cpu: it would shadow the CUDA build"
    )
    assert gpu.get("tensorflow") == LOCKS["cpu"]["tensorflow-cpu"], (
        f"gpu.lock's tensorflow {gpu.get('tensorflow')} is not the CPU hosts' "
        f"tensorflow-cpu {LOCKS['cpu']['tensorflow-cpu']}: train and serve one version"
    )
    for library in CUDA_LIBRARIES:
        assert [n for n in gpu if n.startswith(library)], f"gpu.lock has no {library}* wheel"
    assert not {"tensorflow", "tensorflow-cpu", "keras"} & set(LOCKS["web"])


def test_one_version_of_each_package_across_roles():
    """A package shared by two roles has the same version in both: what the dev venv tests is
    what every host runs (TensorFlow's build, a different package name, aside)."""
    first: dict[str, tuple[str, str]] = {}
    differ = []
    for role, locked in LOCKS.items():
        for name, version in locked.items():
            seen = first.setdefault(name, (role, version))
            if seen[1] != version:
                differ.append(f"{name}: {seen[0]} {seen[1]}, {role} {version}")
    assert differ == [], differ


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    """The requirements pyproject.toml declares for a role on the hosts' platform."""
    reqs = [(Requirement(r), "") for r in PROJECT["dependencies"]]
    reqs += [(Requirement(r), e) for e in extras for r in PROJECT["optional-dependencies"][e]]
    return [
        r for r, e in reqs if not r.marker or r.marker.evaluate({**MARKER_ENVIRONMENT, "extra": e})
    ]


@pytest.mark.parametrize("role", ROLES)
def test_lock_satisfies_what_pyproject_declares(role):
    """Every dependency the role's extras declare is pinned in its lock, at a version the
    declared specifier accepts; the build backend and pip are pinned too (hosts build the
    project with --no-build-isolation)."""
    locked = LOCKS[role]
    wanted = declared(ROLES[role].extras)
    wanted += [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    missing = [str(r) for r in wanted if canonical(r.name) not in locked]
    assert missing == [], f"requirements/{role}.lock lacks {missing}: run `make lock`"
    outside = [
        f"{r} (locked {locked[canonical(r.name)]})"
        for r in wanted
        if not r.specifier.contains(locked[canonical(r.name)], prereleases=True)
    ]
    assert outside == [], f"requirements/{role}.lock: {outside}: run `make lock`"
    assert "pip" in locked, f"requirements/{role}.lock does not pin pip"


@pytest.mark.parametrize("role", ROLES)
def test_locks_are_fresh(role):
    """Each lock records the sha256 of the inputs it was resolved from; pyproject.toml's
    dependencies moved since means the lock is stale."""
    recorded = recorded_digest(ROLES[role].path)
    assert recorded, f"requirements/{role}.lock has no inputs-sha256 header: run `make lock`"
    assert recorded == inputs_digest(), (
        f"pyproject.toml's dependencies changed since requirements/{role}.lock was made: "
        "run `make lock` and commit requirements/"
    )


def test_the_tested_environment_is_the_dev_lock():
    """What the tests run on is what ships: `make venv` installs requirements/dev.lock and
    records its sha256 in the venv's stamp; every pin of it is what this Python has."""
    stamp = Path(sys.prefix) / ".installed"
    lock = ROLES["dev"].path
    recorded = stamp.read_text().split()[:1] if stamp.is_file() else []
    if not recorded:
        pytest.skip(
            f"{sys.prefix} was not installed from requirements/dev.lock by `make venv` (no "
            "lock digest in its .installed stamp): run the tests with .venv/bin/python"
        )
    current = hashlib.sha256(lock.read_bytes()).hexdigest()
    assert recorded[0] == current, f"{sys.prefix} holds an older dev.lock: run `make venv`"
    installed = {
        canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    differ = {n: (v, installed.get(n)) for n, v in LOCKS["dev"].items() if installed.get(n) != v}
    assert differ == {}, f"locked vs installed: {differ}: run `make venv`"


def module_sources(module: str) -> list[Path]:
    """The files of a module of this project, e.g. ``jobs.protocol`` (a package: all of it)."""
    base = ROOT.joinpath(*module.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    return [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else []


def third_party_imports(package: str) -> dict[str, str]:
    """{top-level module: first importing file} of everything outside this project and the
    standard library that ``package`` imports, following its imports of our own packages."""
    found: dict[str, str] = {}
    todo, seen = [package], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for path in module_sources(current):
            for name in imported_modules(path):
                if name in PACKAGES:
                    todo.append(name)
                elif name not in sys.stdlib_module_names and name != "__future__":
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_ui_runs_on_the_web_lock():
    """The ui host installs requirements/web.lock, no TensorFlow: every module the UI (and the
    packages of ours it uses) imports comes from a distribution pinned there."""
    distributions = importlib.metadata.packages_distributions()
    web = LOCKS["web"]
    missing = []
    for module, where in sorted(third_party_imports("pneumonia_web").items()):
        dists = {canonical(d) for d in distributions.get(module, [module])}
        if not dists & set(web):
            missing.append(f"{module} ({where}; from {sorted(dists)})")
    assert missing == [], f"the UI imports what requirements/web.lock lacks: {missing}"


# The driver branch that supports a CUDA toolkit's full feature set (NVIDIA's CUDA release
# notes: the driver each toolkit ships with). Older drivers of the same major run it only under
# minor-version compatibility (CUDA 12: >= 525, without JIT of the newer PTX).
FULL_SUPPORT_DRIVER = {"12.4": 550, "12.5": 555, "12.6": 560, "12.8": 570, "12.9": 575, "13.0": 580}


def test_the_gpu_driver_matches_the_cuda_wheels():
    """terraform's default NVIDIA driver branch runs the CUDA runtime that gpu.lock brings."""
    runtime = [(n, v) for n, v in LOCKS["gpu"].items() if n.startswith("nvidia-cuda-runtime-cu")]
    assert len(runtime) == 1, f"gpu.lock: expected one nvidia-cuda-runtime wheel, got {runtime}"
    cuda = ".".join(runtime[0][1].split(".")[:2])
    assert cuda in FULL_SUPPORT_DRIVER, f"CUDA {cuda}: add its driver branch to this table"
    variables = (ROOT / "terraform" / "variables.tf").read_text()
    block = re.search(r'variable "nvidia_driver" \{(.*?)\n\}', variables, re.S)[1]
    branch = int(re.search(r'default\s*=\s*"nvidia:(\d+)', block)[1])
    assert branch >= FULL_SUPPORT_DRIVER[cuda], (
        f"gpu.lock brings CUDA {cuda}, which needs driver {FULL_SUPPORT_DRIVER[cuda]} or newer; "
        f"terraform's nvidia_driver default is branch {branch}"
    )
