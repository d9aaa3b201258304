"""``pneumonia-score`` against the real stack (gunicorn API, redis-server, an inference worker
with the tiny model) on the shared full-resolution sample plus broken files.

One scenario, as a study coordinator would meet it: the run is interrupted while results are
still coming, run again before the workers are back (results time out: "run again"), then run
a third time once a worker serves: every file ends with its answer, the broken ones are
reported per file, nothing was uploaded twice, and the labelled folder gets its figures.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib

import pytest
import requests

from devstack.api import AUTH
from devstack.settings import FULLRES, ROOT
from devstack.stack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def folder(tmp_path, fullres_xrays):
    """The 48 originals in NORMAL/ and PNEUMONIA/, a truncated JPEG and a text file."""
    root = tmp_path / "study"
    shutil.copytree(FULLRES, root)
    good = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpeg"))
    data = fullres_xrays[0].read_bytes()
    (root / "PNEUMONIA" / "cut-short.jpeg").write_bytes(data[: len(data) // 3])
    (root / "NORMAL" / "referral.txt").write_text("Dear colleague, please see the attached.")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not a file of the study
    return root, good


def as_a_background_job():
    """What ``cmd &`` in a script does to its child: SIGINT ignored, inherited."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def score(folder, out, *extra, wait=True, background=False, **env):
    argv = [sys.executable, "-m", "pneumonia_score", str(folder), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCORE_POLL_SECONDS": "0.2", **env}
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, text=True,
                            preexec_fn=as_a_background_job if background else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=400)
    return proc.returncode, stdout, stderr


def rows(out) -> dict[str, dict]:
    with out.open(newline="") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


def test_scores_a_folder_resumes_and_reports_bad_files(tmp_path, folder, model_store):
    root, good = folder
    out = tmp_path / "scores.csv"
    with LocalStack(tmp_path / "stack", model_store=model_store.root, workers=0) as stack:
        env = {"API_URL": stack.api_url, "API_TOKEN": stack.api_token}

        # 1. No worker yet: every file is uploaded and waits; Ctrl-C stops the run cleanly,
        # even started from a script in the background (SIGINT inherited as ignored).
        proc = score(root, out, "--quiet", wait=False, background=True, **env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= len(good) + 3:
                break  # header + 48 queued + 2 refused
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "run the same command again to resume" in stderr
        first = rows(out)
        assert {first[f]["status"] for f in good} == {"queued"}
        assert all(len(first[f]["id"]) == 32 for f in good)

        # 2. Still no worker: the results do not come in time; the run says to run it again.
        code, stdout, _ = score(root, out, "--quiet", "--wait", "1", **env)
        assert code == 1 and "48 timeout" in stdout
        assert "48 files have no answer yet: run the same command again to resume" in stdout

        # 3. A worker serves: the same command finishes the job.
        stack.start_worker("worker-1")
        code, stdout, stderr = score(root, out, **env)
        assert code == 0, stdout + stderr
        assert "image" in stderr  # the progress bar (tqdm) on stderr

        history = requests.get(stack.api_url + "/v1/predictions?limit=200", headers=AUTH,
                               timeout=10).json()["items"]  # fmt: skip
    assert len(history) == len(good), "a file was uploaded twice"

    final = rows(out)
    assert list(final) == sorted(final), "one row per file, sorted"
    assert set(final) == {*good, "PNEUMONIA/cut-short.jpeg", "NORMAL/referral.txt"}
    for name in good:
        row = final[name]
        assert row["status"] == "done" and row["label"] in ("Pneumonia", "Normal"), row
        assert 0 <= float(row["probability"]) <= 1 and float(row["threshold"]) > 0
        assert row["model_version"] == "tiny-1" and row["error"] == ""
    assert final["PNEUMONIA/cut-short.jpeg"]["status"] == "rejected"
    assert "export it again" in final["PNEUMONIA/cut-short.jpeg"]["error"].lower()
    assert final["NORMAL/referral.txt"]["status"] == "rejected"
    assert "not a PNG, JPEG or DICOM" in final["NORMAL/referral.txt"]["error"]

    assert "50 files: 48 done, 2 rejected" in stdout
    assert "  PNEUMONIA/cut-short.jpeg: rejected: " in stdout
    assert "labelled images scored: 24 PNEUMONIA, 24 NORMAL" in stdout
    for metric in ("auc", "sensitivity", "specificity"):
        line = next(ln for ln in stdout.splitlines() if ln.strip().startswith(metric))
        value, low, high = (
            float(x) for x in line.split()[1:2] + line.split("[")[1].rstrip("]").split(",")
        )
        assert 0 <= low <= value <= high <= 1, line


def test_a_wrong_token_stops_at_once_with_what_to_do(tmp_path, folder):
    root, _ = folder
    with LocalStack(tmp_path / "stack") as stack:
        code, _, stderr = score(root, tmp_path / "s.csv", "--quiet", API_URL=stack.api_url,
                                API_TOKEN="not-the-token")  # fmt: skip
    assert code == 2 and "refused the token" in stderr and "Bearer" in stderr
    code, _, stderr = score(root, tmp_path / "s.csv", "--quiet", API_TOKEN="")
    assert code == 2 and "set API_TOKEN" in stderr


def test_the_command_is_installed_with_the_package():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["pneumonia-score"].partition(":")
    assert getattr(__import__(module, fromlist=[func]), func).__module__ == "pneumonia_score.cli"
