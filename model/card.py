"""The model card: what a model is, how it was made and how good it is, beside ``model.keras``.

The inference worker reads ``input_size`` (it resizes to it) and ``threshold`` (its decision
rule); the UI shows the rest. The keys in :data:`REQUIRED` are that contract.

``files`` holds the SHA-256 of each file a worker relies on (:data:`SERVED_FILES` present
beside the model: the model, the ``quality.npz`` check set, int8 calibration images), written
with the card: the worker refuses to serve a version whose files do not match it (a
truncated copy, a swapped or tampered file) and keeps serving the version it has. The store
fetches exactly these files for a worker.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

REQUIRED = (
    "name",
    "version",
    "architecture",
    "input_size",
    "preprocessing",
    "weights",
    "threshold",
    "training_data",
    "metrics",
    "training_time_seconds",
    "hardware",
    "trained_at",
    "git_sha",
    "keras_version",
    "epochs",
)
DATA_NAME = (
    "Kermany et al. 2018 chest X-rays (pediatric, Guangzhou Women and Children's Medical Center)"
)
DATA_CREDIT = (
    "Kermany, Zhang, Goldbaum et al., Labeled Optical Coherence Tomography (OCT) and Chest X-Ray "
    "Images for Classification, Mendeley Data v2 (2018), doi:10.17632/rscbjbr9sj.2, CC BY 4.0; "
    "Kermany et al., Cell 172(5) 2018, doi:10.1016/j.cell.2018.02.010"
)
IN_DATASET = (
    "in-dataset: every figure is measured on held-out patients of the same hospital and "
    "dataset (Kermany train split); the public test split, other periods and other hospitals "
    "are not measured here, and the figures there are expected to be lower"
)
INTENDED_USE = (
    "Research use only, not a diagnosis: a second reader that flags possible pneumonia on "
    "frontal (PA/AP) chest radiographs of children aged 1-5, for a clinician who reads the "
    "film; never to rule pneumonia out on its own."
)
LIMITATIONS = [
    "Paediatric: trained on children aged 1-5; adults and infants are outside its data.",
    "Single centre: one hospital (Guangzhou Women and Children's Medical Center), one period; "
    "other scanners, exposures and populations may lower every figure.",
    "Frontal chest radiographs only: lateral views, other body parts, CT and photographs are "
    "refused as not assessable where detected, but the check is not perfect.",
    "Binary: pneumonia (bacterial or viral) against normal; other findings (effusion, "
    "pneumothorax, tubes, masses) are not assessed and may be labelled either way.",
    "The probability is calibrated on held-out patients of the same dataset, where 74 % of "
    "the films show pneumonia: in a population with fewer pneumonias the real chance behind "
    "a given score is lower, and on other equipment it may be over- or under-confident.",
]
PREPROCESSING = (
    "model.preprocess.prepare: decode, greyscale, square bilinear resize to input_size "
    "(aspect ratio not kept), 3 equal channels, float32 0..255; normalisation is inside the model"
)


def hardware() -> str:
    """CPU model and core count, plus the GPU when TensorFlow sees one."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = cpu or "unknown CPU"
    text = f"{cpu}, {os.cpu_count()} CPU cores"
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            text += f", {len(gpus)} x {details.get('device_name', 'GPU')}"
    except Exception as exc:  # hardware is descriptive only; never fail training over it
        text += f" (GPU query failed: {type(exc).__name__})"
    return text


MODEL_FILE = "model.keras"
FILES = "files"
# What serving reads of a version: the model, the backend check set, int8 calibration images.
SERVED_FILES = (MODEL_FILE, "quality.npz", "calibration.npz")


class ChecksumMismatch(ValueError):
    """A model's files are not those its card describes: it must not be served."""


def sha256_of(path: Path) -> str:
    """A file's SHA-256 (model files, check sets, training images): one hasher for all."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def checksums(model_dir: Path) -> dict:
    """The ``files`` entry of a card: ``{"model.keras": {"sha256": ...}, ...}`` for each of
    :data:`SERVED_FILES` present (the model always)."""
    model_dir = Path(model_dir)
    present = [n for n in SERVED_FILES if n == MODEL_FILE or (model_dir / n).is_file()]
    return {name: {"sha256": sha256_of(model_dir / name)} for name in present}


def verify_files(model_dir: Path, card: dict) -> None:
    """Raise ChecksumMismatch unless every file the card lists matches its SHA-256.

    A card without checksums is refused too: nothing would show that the file is the one
    trained and evaluated.
    """
    listed = card.get(FILES) or {}
    if MODEL_FILE not in listed:
        raise ChecksumMismatch(
            f"the card of {card.get('version')} lists no checksum for {MODEL_FILE}: "
            "publish a model whose card was written by model.card.write"
        )
    for name, facts in listed.items():
        actual = sha256_of(Path(model_dir) / name)
        if actual != facts.get("sha256"):
            raise ChecksumMismatch(
                f"{name} of {card.get('version')} does not match the checksum in its card "
                f"(sha256 {actual[:12]}..., card {str(facts.get('sha256'))[:12]}...)"
            )


def missing_keys(card: dict) -> list[str]:
    return [key for key in REQUIRED if key not in card]


def write(card: dict, model_dir: Path) -> Path:
    """Write ``model_card.json`` with the model file's checksum (the model is saved first);
    refuses a card that breaks the contract."""
    missing = missing_keys(card)
    if missing:
        raise ValueError(f"model card misses {missing}")
    if (Path(model_dir) / MODEL_FILE).is_file():
        card = {**card, FILES: checksums(model_dir)}
    path = Path(model_dir) / "model_card.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path
