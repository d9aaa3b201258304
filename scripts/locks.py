"""`make lock`: one lock file per host role in requirements/, pinned and hashed.

Each host installs exactly its role's lock with ``pip install --require-hashes`` (the host
script's ``install_release``; ``make venv`` installs ``dev``), so every host runs the versions
the tests ran, and a tampered or substituted wheel is refused. Locks are made with uv for the
hosts' platform (CPython 3.11, linux x86_64, manylinux_2_28), whatever machine runs this.

One set of versions across roles: ``dev`` (a superset of ``cpu``) is resolved first, keeping
the versions its previous lock had (``--upgrade`` moves them); the other roles are resolved
under its pins, and ``gpu`` under ``tensorflow==`` the version of ``tensorflow-cpu``. Only
TensorFlow's build (and the CUDA wheels that come with ``tensorflow[and-cuda]``) differs.

Every lock also pins pip and the build backend (``[build-system] requires``): hosts install the
project itself with ``--no-deps --no-build-isolation``, so nothing unhashed is ever fetched.

The header of each lock records the sha256 of its inputs (:func:`inputs_digest`);
tests/packaging/test_locks.py recomputes it and says ``make lock`` when pyproject.toml moved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_DIR = ROOT / "requirements"
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
# The environment the locks are resolved for, as PEP 508 markers see it (tests use it too).
MARKER_ENVIRONMENT = {
    "implementation_name": "cpython",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "platform_python_implementation": "CPython",
}
# Installed beside every role's requirements (hosts build the project without isolation).
TOOLING = ["pip"]
DIGEST_LINE = "# inputs-sha256: "


@dataclass(frozen=True)
class Role:
    """A lock file: the pyproject extras it installs (beside the base dependencies)."""

    name: str
    extras: tuple[str, ...]
    hosts: str

    @property
    def path(self) -> Path:
        return LOCK_DIR / f"{self.name}.lock"


# dev first: the others are resolved under its pins.
ROLES = {
    r.name: r
    for r in [
        Role("dev", ("model", "cpu", "perf", "dev"), "`make venv` and CI: cpu plus the test tools"),
        Role("cpu", ("model", "cpu", "perf"), "the app and worker hosts (API, CPU worker)"),
        Role("gpu", ("model", "gpu", "perf"), "the ml host (GPU training and GPU worker)"),
        Role("web", (), "the ui host (Flask UI: talks to the API, runs no model)"),
    ]
}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def inputs_digest(project: dict | None = None) -> str:
    """sha256 of everything a lock is resolved from: pyproject's dependency tables, the build
    requirements, the roles and the target platform."""
    project = project or pyproject()
    inputs = {
        "dependencies": project["project"]["dependencies"],
        "optional-dependencies": project["project"]["optional-dependencies"],
        "build-system": project["build-system"]["requires"],
        "tooling": TOOLING,
        "roles": {r.name: r.extras for r in ROLES.values()},
        "target": [PYTHON_VERSION, PLATFORM],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The inputs digest a lock's header records (None: no such line)."""
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_LINE):
            return line.removeprefix(DIGEST_LINE).strip()
    return None


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str
    hashes: tuple[str, ...]
    line: str  # the requirement as written, for messages


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> list[Pin]:
    """The requirements of a lock file, continuation lines joined, comments dropped. A line
    that is not ``name==version`` comes back with an empty version, for the tests to name."""
    pins, logical = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            spec, *options = logical.split()
            hashes = tuple(o.removeprefix("--hash=") for o in options if o.startswith("--hash="))
            found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;,=<>!~]+)", spec)
            name, version = (found[1], found[2]) if found else (spec, "")
            pins.append(Pin(canonical(name), version, hashes, logical.strip()))
        logical = ""
    return pins


def pins(lock: Path) -> dict[str, str]:
    """{canonical name: version} of a lock file."""
    return {p.name: p.version for p in parse_lock(lock.read_text())}


def uv_compile(role: Role, output: Path, constraints: Path | None, upgrade: bool) -> None:
    """Resolve ``role`` into ``output`` (whose existing pins uv keeps unless ``upgrade``)."""
    project = pyproject()
    with tempfile.TemporaryDirectory() as tmp:
        tooling = Path(tmp) / "tooling.in"
        tooling.write_text("\n".join([*project["build-system"]["requires"], *TOOLING]) + "\n")
        argv = [
            sys.executable, "-m", "uv", "pip", "compile", "--quiet",
            str(ROOT / "pyproject.toml"), str(tooling),
            *[f"--extra={e}" for e in role.extras],
            f"--python-version={PYTHON_VERSION}", f"--python-platform={PLATFORM}",
            "--generate-hashes", "--no-header", "--no-annotate",
            "--index-url=https://pypi.org/simple", "--output-file", str(output),
        ]  # fmt: skip
        if constraints:
            argv += ["--constraint", str(constraints)]
        if upgrade:
            argv.append("--upgrade")
        subprocess.run(argv, check=True, cwd=ROOT)


def header(role: Role, digest: str) -> str:
    extras = " + ".join(["base", *role.extras])
    uv = subprocess.run(
        [sys.executable, "-m", "uv", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    return (
        f"# requirements/{role.name}.lock: {role.hosts}.\n"
        f"# pyproject.toml's {extras}, with pip and the build backend; CPython {PYTHON_VERSION}"
        f" on {PLATFORM}.\n"
        f"# Made by `make lock` (scripts/locks.py, uv {uv}): do not edit by hand. Install with\n"
        "# `pip install --require-hashes -r` this file, then the project with `--no-deps`.\n"
        f"{DIGEST_LINE}{digest}\n"
    )


def write_constraints(path: Path, versions: dict[str, str]) -> Path:
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())))
    return path


def lock(upgrade: bool = False, seed: Path | None = None) -> None:
    """Write every role's lock; ``seed``: constraints for the first (dev) resolution, e.g. a
    ``pip freeze`` of the environment the tests ran in."""
    LOCK_DIR.mkdir(exist_ok=True)
    digest = inputs_digest()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shared: dict[str, str] = {}
        for role in ROLES.values():
            out = work / role.path.name
            if role.path.exists():
                out.write_text(role.path.read_text())  # uv keeps the pins it finds there
            constraints = seed if role.name == "dev" else work / f"{role.name}.constraints"
            if role.name != "dev":
                extra = {"tensorflow": shared["tensorflow-cpu"]} if role.name == "gpu" else {}
                write_constraints(constraints, {**shared, **extra})
            uv_compile(role, out, constraints, upgrade)
            if role.name == "dev":
                shared = pins(out)
            role.path.write_text(header(role, digest) + out.read_text())
            print(f"wrote {role.path.relative_to(ROOT)} ({len(pins(role.path))} packages)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest")
    parser.add_argument(
        "--seed", type=Path, help="constraints for the dev resolution (e.g. a pip freeze)"
    )
    args = parser.parse_args(argv)
    lock(upgrade=args.upgrade, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
