"""Helpers for tests that run real processes: free ports, waiting, a tiny model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data"))
FULLRES = SHARED_DATA / "chest_xray_fullres_sample"
TRAIN_224 = SHARED_DATA / "chest_xray_224" / "train"


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    wait_until(
        lambda: requests.get(url, timeout=2, verify=False).status_code < 500,
        timeout=timeout,
        what=url,
    )


def start(argv: list[str], env: dict | None = None, log: Path | None = None, **kw):
    """Start a real process in its own session, output to ``log`` (kept for post-mortems)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the process end
    return subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=kw.pop("cwd", ROOT),
        start_new_session=True,
        **kw,
    )


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Stop a process group politely, then firmly."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def python() -> str:
    return sys.executable


def build_tiny_model(
    out_dir: Path,
    size: int = 32,
    version: str = "tiny-1",
    threshold: float = 0.5,
    bias: float = 0.0,
) -> Path:
    """A small real Keras model with a complete card, saved as a store version directory.

    Built like the production model (Rescaling inside, sigmoid output) but tiny, so worker
    tests run in seconds. ``bias`` shifts the output, to tell two versions apart.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        1, activation="sigmoid", bias_initializer=keras.initializers.Constant(bias)
    )(x)
    model = keras.Model(inputs, outputs, name="tiny_cnn")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.keras")
    card = {
        "name": "tiny test model",
        "version": version,
        "architecture": "tiny CNN (tests only)",
        "input_size": size,
        "preprocessing": "model.preprocess.prepare: greyscale, square resize, 3 channels, 0..255",
        "weights": "random",
        "threshold": threshold,
        "training_data": {"name": "none", "credit": "none"},
        "metrics": {},
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2))
    return out_dir
