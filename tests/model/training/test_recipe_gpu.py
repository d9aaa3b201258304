"""The gpu recipe refuses a CPU, quickly and saying what it found (this host has no GPU)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from model.training.devices import tensorflow_gpus


@pytest.fixture(scope="module")
def no_gpu():
    if tensorflow_gpus()[0]:
        pytest.skip("this host has a GPU: the refusal cannot be shown here")


def train(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "model.train", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_gpu_recipe_without_a_gpu_stops_within_a_minute_naming_it(no_gpu, root, tmp_path):
    t0 = time.monotonic()
    done = train(
        "--recipe", "gpu", "--data", str(tmp_path), "--output", str(tmp_path / "run"), cwd=root
    )
    assert time.monotonic() - t0 < 60
    assert done.returncode == 3, done.stderr
    assert "the gpu recipe needs a GPU and TensorFlow sees none" in done.stderr
    assert "nvidia-smi" in done.stderr and "--allow-cpu" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists(), "nothing is started before the check"


def test_allow_cpu_goes_past_the_gpu_check(no_gpu, root, tmp_path):
    done = train("--recipe", "gpu", "--allow-cpu", "--data", str(tmp_path), cwd=root)
    assert done.returncode == 2, done.stderr  # now it is the (missing) data that stops it
    assert "needs a GPU" not in done.stderr and "no NORMAL/PNEUMONIA images" in done.stderr
