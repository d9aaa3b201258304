"""Choosing the serving backend on the host that serves: ``INFERENCE_BACKEND=auto``.

Reduced precision is a trade the host has to earn: whether int8 or bf16 keeps the model's
quality depends on the model and on the CPU (OpenVINO's CPU plugin computes differently with
AVX2, AVX-512 BF16 or AMX), and a figure measured on another machine says nothing about this
one. So, once per model version and host, the worker:

1. scores Keras fp32 (the reference) on a check set of labelled validation X-rays: the
   ``quality.npz`` the version ships, else the card's validation split of the local data;
2. scores every backend this host can run on the same images, timing each;
3. serves the fastest whose ROC AUC is at most ``max_auc_loss`` below the reference.

Without a check set (both classes needed) nothing reduced is trusted: the exact fp32 OpenVINO
(or onnxruntime) export is served, and the log says why. The decision and its figures are
kept beside the exports (``backend-choice-<host>.json``), so a restart does not re-measure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from model.serving import predictor as serving
from model.store import CARD_FILE

log = logging.getLogger("model.serving.selection")

QUALITY_FILE = "quality.npz"
# Tried in this order; the fastest passing one wins, ties to the earlier (exact before not).
CANDIDATES = ("openvino", "onnx", "openvino-bf16", "openvino-int8", "onnx-int8")


def choose(
    model_dir: Path,
    max_batch: int,
    threads: int,
    cache_dir: Path,
    data: str | None,
    check_images: int,
    max_auc_loss: float,
) -> serving.Predictor:
    """Load ``model_dir`` with the fastest backend that keeps quality on this host."""
    card = json.loads((model_dir / CARD_FILE).read_text())
    size = int(card.get("input_size") or 0)
    record = serving.compiled_dir(model_dir, str(card["version"]), cache_dir) / (
        f"backend-choice-{host_key()}.json"
    )

    def load(backend: str) -> serving.Predictor:
        return serving.load_predictor(model_dir, backend, max_batch, threads, cache_dir, data)

    if record.is_file():
        chosen = json.loads(record.read_text())["chosen"]
        log.info("backend %s, chosen on this host earlier (%s)", chosen, record)
        return load(chosen)
    candidates = available()
    pixels, labels = check_set(model_dir, card, size, data, check_images) if size else ([], [])
    if not len(labels) or not 0 < int(np.sum(labels)) < len(labels):
        chosen = next((b for b in candidates if serving.BACKENDS[b] == "fp32"), "keras")
        log.warning(
            "no labelled check set for %s (ship %s with the version, or set CALIBRATION_DATA "
            "to the training data): reduced precision unchecked, serving %s (fp32)",
            card["version"],
            QUALITY_FILE,
            chosen,
        )
        return load(chosen)
    results = measure(load, candidates, pixels, labels, max_batch)
    if not results or results[0]["backend"] != "keras":
        raise RuntimeError("keras fp32, the reference of the backend check, failed to load")
    reference = results[0]["auc"]
    for row in results:
        row["auc_loss"] = round(reference - row["auc"], 5)
        row["passed"] = row["auc_loss"] <= max_auc_loss
    passing = [r for r in results if r["passed"] and r["backend"] != "keras"] or results[:1]
    best = max(passing, key=lambda r: r["images_per_second"])
    log.info("backend check on %d validation X-rays:\n%s", len(labels), table(results))
    log.info("serving %s: the fastest within %.4f AUC of keras fp32", best["backend"], max_auc_loss)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "chosen": best["backend"],
                "check_images": len(labels),
                "max_auc_loss": max_auc_loss,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    return load(best["backend"])


def available() -> list[str]:
    """Candidate backends this host can actually run (no silent fallbacks among them)."""
    found = []
    for backend in CANDIDATES:
        logger = logging.getLogger("model.serving.predictor")
        level = logger.level
        logger.setLevel(logging.ERROR)  # the fallback warnings are expected here
        try:
            if serving.resolve_backend(backend) == backend:
                found.append(backend)
        finally:
            logger.setLevel(level)
    return found


def measure(load, candidates, pixels, labels, max_batch) -> list[dict]:
    """AUC and images/s of keras (first: the reference) and each candidate, on one check set."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for backend in ["keras", *candidates]:
        try:
            predictor = load(backend)
        except Exception as exc:  # a backend that cannot load is simply not a candidate
            log.warning("backend %s unavailable here: %s", backend, exc)
            continue
        if predictor.backend != backend:
            continue  # it fell back to another: that one is measured under its own name
        step = max(1, max_batch)
        t0 = time.perf_counter()
        probs = np.concatenate(
            [predictor.predict(pixels[i : i + step]) for i in range(0, len(pixels), step)]
        )
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "backend": backend,
                "precision": serving.BACKENDS[backend],
                "auc": round(float(roc_auc_score(labels, probs)), 5),
                "images_per_second": round(len(pixels) / seconds, 1),
            }
        )
        del predictor
    return rows


def table(results: list[dict]) -> str:
    """The measurements side by side, as the worker logs them."""
    lines = [f"{'backend':<15}{'precision':<11}{'AUC':>8}{'loss':>9}{'img/s':>9}  passed"]
    for r in results:
        lines.append(
            f"{r['backend']:<15}{r['precision']:<11}{r['auc']:>8.4f}{r['auc_loss']:>9.4f}"
            f"{r['images_per_second']:>9.1f}  {'yes' if r['passed'] else 'NO'}"
        )
    return "\n".join(lines)


def check_set(
    model_dir: Path, card: dict, size: int, data: str | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` labelled validation X-rays (pixels 0..255, labels 0/1); empty if none."""
    shipped = model_dir / QUALITY_FILE
    if shipped.is_file():
        with np.load(shipped) as f:
            images, labels = f["images"][:n].astype(np.float32), f["labels"][:n]
        if images.ndim == 3:
            images = np.repeat(images[..., None], 3, axis=3)
        if images.shape[1:3] == (size, size):
            return images, labels.astype(np.int64)
        log.warning("%s holds %s images, the model takes %d px", shipped, images.shape, size)
    from model import preprocess
    from model.serving.export import SHARED_DATA
    from model.training import data as model_data

    none = np.zeros((0, size, size, 3), np.float32), np.zeros(0, np.int64)
    root = Path(data) if data else SHARED_DATA
    if not root.is_dir():
        return none
    try:
        val = model_data.splits_from_card(model_data.resolve_root(root), card)["val"]
    except model_data.DataError as exc:
        log.warning("no check set from %s: %s", root, str(exc).split(". ")[0])
        return none
    order = np.random.default_rng(0).permutation(len(val.paths))[:n]
    pixels = [preprocess.prepare(Path(val.paths[i]).read_bytes(), size) for i in order]
    return np.stack(pixels), np.asarray([val.labels[i] for i in order], np.int64)


def host_key() -> str:
    """The CPU and runtime versions a choice holds for (another host decides for itself)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                cpu += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    versions = []
    for module in ("openvino", "onnxruntime"):
        try:
            versions.append(__import__(module).__version__)
        except ImportError:
            versions.append("-")
    return hashlib.sha256((cpu + "|".join(versions)).encode()).hexdigest()[:12]
