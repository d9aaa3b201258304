"""Model versions name the commit that trained them, in a checkout and in a release.

The boxes run ``make release``'s ``git archive`` unpacked, with no ``.git``, from a service
whose working directory is elsewhere: there a version ending in ``-unknown`` could not be
traced to its code (issue 14)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROBE = "from model.training.versioning import git_sha; print(git_sha(), git_sha(short=False))"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def head() -> str:
    try:
        return git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing to compare the stamped commit with")


def sha_seen_from(code_root: Path, cwd: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env={"PYTHONPATH": str(code_root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_a_checkout_names_its_commit_whatever_the_working_directory(head, tmp_path):
    short, full = sha_seen_from(ROOT, cwd=tmp_path)
    assert full == head and head.startswith(short)


def test_a_release_archive_names_its_commit_without_git(head, tmp_path):
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", "model"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    release = tmp_path / "release"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(release, filter="data")
    assert not (release / ".git").exists()
    short, full = sha_seen_from(release, cwd=tmp_path)
    assert full == head and short == head[:7]


def test_unstamped_code_outside_git_says_unknown(tmp_path):
    code = tmp_path / "code"
    (code / "model" / "training").mkdir(parents=True)
    for name in ("__init__.py", "RELEASE", "training/__init__.py", "training/versioning.py"):
        (code / "model" / name).write_bytes((ROOT / "model" / name).read_bytes())
    assert sha_seen_from(code, cwd=tmp_path) == ["unknown", "unknown"]
