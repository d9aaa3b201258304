"""Loading a published model version for serving, behind one small interface.

The worker only needs ``predict(batch) -> probabilities`` plus the card's facts (version,
threshold, input size). The runtime (model/serving/runtimes.py) is chosen by ``INFERENCE_BACKEND``:

==================  ======================================================================
``keras``           TensorFlow, the ``model.keras`` file itself, padded to a fixed batch (fp32)
``onnx``            onnxruntime, fp32, from a one-off ONNX export of the Keras model
``onnx-int8``       onnxruntime, int8 (static quantisation calibrated on training X-rays)
``openvino``        OpenVINO, fp32 pinned (INFERENCE_PRECISION_HINT=f32), from the same ONNX
``openvino-bf16``   OpenVINO, bf16, only on CPUs with AVX-512 BF16 / AMX (else ``openvino``)
``openvino-int8``   OpenVINO, the same int8 QDQ file, its non-quantised layers pinned to f32
``auto``            the default: the fastest of these whose quality check passes on this host
                    (:mod:`model.serving.selection`), checked when a model version is loaded
==================  ======================================================================

Exports are made once per model version in a child process (:mod:`model.serving.export`) and kept
under ``MODEL_CACHE_DIR/compiled/<version>-<digest of model.keras>/``; a file lock stops two
workers on one host from doing it twice. Whatever cannot be had falls back, with a log line
saying why: no OpenVINO -> onnxruntime; no onnxruntime -> keras; no calibration images ->
the fp32 export of the same runtime; an export that fails -> keras.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import calibration
from model.card import sha256_of, verify_files
from model.serving.runtimes import (
    OpenVinoRunner,
    keras_runner,
    onnxruntime_runner,
    openvino_cpu_has_bf16,
)
from model.store import CARD_FILE, MODEL_FILE

log = logging.getLogger("model.serving.predictor")

# Each backend and the precision it computes in: a decision, never the runtime's default.
BACKENDS = {
    "keras": "fp32",
    "onnx": "fp32",
    "onnx-int8": "int8",
    "openvino": "fp32",
    "openvino-bf16": "bf16",
    "openvino-int8": "int8",
}
AUTO = "auto"
# Which reduced precision keeps quality depends on the model and the CPU (onnxruntime's int8
# lost 0.0034 AUC on one local model, OpenVINO's 0.0012; bf16 exists on some CPUs only), so
# the worker measures it on the host that serves rather than trusting a figure from another.
DEFAULT_BACKEND = AUTO
_RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}


@dataclass
class Predictor:
    version: str
    threshold: float
    input_size: int
    card: dict
    backend: str
    _fn: object = field(repr=False, default=None)

    @property
    def precision(self) -> str:
        """What the backend computes in: fp32, bf16 or int8."""
        return BACKENDS[self.backend]

    @property
    def concurrency(self) -> int:
        """How many ``predict`` calls may usefully run at once (one per inference stream)."""
        return int(getattr(self._fn, "concurrency", 1))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities of pneumonia, one per image, as float32 in [0, 1]. Thread-safe.

        Calibrated with the card's ``calibration`` (model/calibration.py; the identity for
        older cards), so the value served is on the same scale as the card's threshold.
        """
        out = np.asarray(self._fn(batch), dtype=np.float32).reshape(len(batch), -1)
        return calibration.apply(self.card.get("calibration"), out[:, 0]).astype(np.float32)


def host_threads() -> int:
    """CPU cores this process may run on (cgroup/affinity aware, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0))


def _digest(path: Path) -> str:
    return sha256_of(path)[:12]


def compiled_dir(model_dir: Path, version: str, cache_dir: Path) -> Path:
    """Where this exact model file's exports live (a re-published version gets a new one)."""
    return Path(cache_dir) / "compiled" / f"{version}-{_digest(model_dir / MODEL_FILE)}"


def ensure_export(
    model_dir: Path, out: Path, size: int, int8: bool, calibration_data: str | None
) -> Path:
    """``model.onnx`` (or ``model.int8.onnx``) for this version, exporting it if missing."""
    from model.serving.export import compile_in_subprocess

    target = out / ("model.int8.onnx" if int8 else "model.onnx")
    if target.is_file():
        return target
    out.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker on this host may be exporting
        if not target.is_file():
            log.info("compiling %s for %s (once per model version)", target.name, model_dir)
            compile_in_subprocess(model_dir, out, size, int8, calibration_data)
    return target


def resolve_backend(backend: str) -> str:
    """The requested backend, or the nearest one this host can run (logged)."""
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown INFERENCE_BACKEND {backend!r}; supported: {', '.join([*BACKENDS, AUTO])}"
        )
    runtime = _RUNTIME.get(backend.split("-")[0])
    if runtime is not None and importlib.util.find_spec(runtime) is None:
        suffix = backend.removeprefix("openvino").removeprefix("onnx").replace("-bf16", "")
        fallback = "onnx" + suffix if runtime == "openvino" else "keras"
        log.warning(
            "INFERENCE_BACKEND=%s needs %s, which is not installed (pip install -e '.[perf]'): "
            "falling back to %s",
            backend,
            runtime,
            fallback,
        )
        return resolve_backend(fallback)
    if backend == "openvino-bf16" and not openvino_cpu_has_bf16():
        log.warning("this CPU has no native bf16 (AVX-512 BF16/AMX): serving openvino (fp32)")
        return "openvino"
    return backend


def _compiled_fn(model_dir, card, size, backend, threads, max_batch, cache_dir, calibration_data):
    """(fn, backend actually used) for an onnx*/openvino* backend, with its fallbacks."""
    out = compiled_dir(model_dir, str(card["version"]), cache_dir)
    int8 = backend.endswith("-int8")
    try:
        path = ensure_export(model_dir, out, size, int8, calibration_data)
    except Exception as exc:
        if not int8:
            raise
        fp32 = backend.removesuffix("-int8")
        log.warning("int8 model unavailable (%s): serving %s (fp32) instead", exc, fp32)
        path, backend = ensure_export(model_dir, out, size, False, None), fp32
    if backend.startswith("openvino"):
        precision = "bf16" if backend == "openvino-bf16" else "f32"
        return OpenVinoRunner(path, threads, max_batch, precision), backend
    return onnxruntime_runner(path, threads), backend


def load_predictor(
    model_dir: Path,
    backend: str = "keras",
    max_batch: int = 16,
    threads: int = 0,
    cache_dir: str | Path = "var/model-cache",
    calibration_data: str | None = None,
    check_images: int = 256,
    max_auc_loss: float = 0.003,
) -> Predictor:
    """Load a store version directory (``model.keras`` + ``model_card.json``) for serving.

    ``threads=0`` uses every core this process may run on. ``backend="auto"`` chooses one on
    this host (:func:`model.serving.selection.choose`, ``check_images`` validation X-rays,
    at most ``max_auc_loss`` ROC AUC below Keras fp32). A model whose file does not match
    the checksum in its card is refused (ChecksumMismatch) before anything loads it.
    """
    model_dir = Path(model_dir)
    if backend == AUTO:
        from model.serving.selection import choose

        return choose(
            model_dir,
            max_batch=max_batch,
            threads=threads,
            cache_dir=Path(cache_dir),
            data=calibration_data,
            check_images=check_images,
            max_auc_loss=max_auc_loss,
        )
    card = json.loads((model_dir / CARD_FILE).read_text())
    verify_files(model_dir, card)
    threads = threads or host_threads()
    backend = resolve_backend(backend)
    size = int(card.get("input_size") or 0)
    fn = None
    if backend != "keras" and size:
        try:
            fn, backend = _compiled_fn(
                model_dir, card, size, backend, threads, max_batch, cache_dir, calibration_data
            )
        except Exception as exc:
            log.error("%s backend failed (%s): falling back to keras", backend, exc)
            backend = "keras"
    elif backend != "keras":
        log.warning("card of %s has no input_size: serving with keras", card.get("version"))
        backend = "keras"
    if fn is None:
        fn = keras_runner(model_dir / MODEL_FILE, max_batch, threads)
    if not size:
        size = int(_keras_input_size(model_dir))
    predictor = Predictor(
        version=str(card["version"]),
        threshold=float(card.get("threshold", 0.5)),
        input_size=size,
        card=card,
        backend=backend,
        _fn=fn,
    )
    for n in sorted({1, max_batch}):  # warm up now: trace / compile, both OpenVINO paths
        predictor.predict(np.zeros((n, size, size, 3), np.float32))
    return predictor


def _keras_input_size(model_dir: Path) -> int:
    import keras

    return keras.saving.load_model(model_dir / MODEL_FILE, compile=False).input_shape[1]
