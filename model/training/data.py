"""Data: find the X-rays, split them by patient, stream them through ``model.preprocess``.

Layouts understood (the Kermany et al. 2018 dataset and anything shaped like it)::

    <root>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg   the published dataset
    <root>/train/{NORMAL,PNEUMONIA}/*.jpeg              only train (../shared/data/chest_xray_224)
    <root>/test/{NORMAL,PNEUMONIA}/*.jpeg               only test (evaluation)
    <root>/{NORMAL,PNEUMONIA}/*.jpeg                    a bare folder

Why split by patient: one child often has several films. A random image split puts the same
lungs on both sides and inflates validation AUC; here a patient is in exactly one split.
Why stratify: 26 % of the images are NORMAL, and the validation split has to hold enough of
them for the specificity (and the threshold chosen on it) to mean anything.

Why a manifest: where the folder holds ``MANIFEST.sha256`` (a data set synced from S3 by
:mod:`model.datasets`), every file a run reads is checked against it first, so a corrupted or
swapped image stops training with its name, and the card records which data set version
(the manifest's sha256) the model learnt from. A folder without one still trains (local
work on ../shared/data), logged as unverified and recorded as ``manifest_sha256: null``.

Why pixels go through :func:`model.preprocess.prepare`: the inference worker calls the same
function, so the tensor learnt from is the tensor served. The decoded, resized images are
cached as uint8 (lossless: ``prepare`` returns whole numbers) so each JPEG is decoded once.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model import datasets, preprocess
from model.datasets import CLASSES, EXTENSIONS  # label 0, label 1: pneumonia is positive

log = logging.getLogger("model.train")  # one name for a run's whole train.log
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "chest_xray_224"
DATA_ENV = "PNEUMONIA_DATA"
CACHE_ENV = "DATASET_CACHE"  # where --data s3://... is synced to
WHERE_TO_GET = (
    "Get the Kermany et al. chest X-rays (Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0) "
    "and pass --data DIR (or set PNEUMONIA_DATA) pointing at a folder holding train/ (or test/, "
    "or NORMAL/ and PNEUMONIA/). In this project they are at ../shared/data/chest_xray_224."
)
# The Kaggle copy of the dataset ships a 16-image val/: too small to pick a threshold on.
MIN_VAL_IMAGES = 100

_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_SEQUENCE = re.compile(r"^(.+)-\d+$")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


class DataError(FileNotFoundError):
    """No usable X-rays where we looked."""


@dataclass
class Split:
    """One split: image paths and 0/1 labels, in a fixed order."""

    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Images per class, for the model card and the log."""
        n_pos = int(sum(self.labels))
        return {"NORMAL": len(self.labels) - n_pos, "PNEUMONIA": n_pos, "total": len(self.labels)}

    def patients(self) -> set[str]:
        return {patient_id(p) for p in self.paths}

    def subset(self, indices) -> Split:
        """The images at ``indices``, in that order."""
        return Split([self.paths[i] for i in indices], [self.labels[i] for i in indices])


def resolve_root(data: str | os.PathLike | None) -> Path:
    """The data folder: the argument, else $PNEUMONIA_DATA, else the shared copy; or say where.

    An ``s3://bucket/prefix`` data set is synced into a local cache first (:func:`synced`).
    """
    source = data or os.environ.get(DATA_ENV) or DEFAULT_DATA
    if str(source).startswith("s3://"):
        return synced(str(source))
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DataError(f"no data at {root}. {WHERE_TO_GET}")
    return root


@functools.cache
def synced(uri: str) -> Path:
    """A data set in S3, synced into $DATASET_CACHE/<bucket>/<prefix> (default var/datasets).

    Once per process (a run resolves its data more than once). The cache belongs to the sync,
    so images its manifest does not list are removed (``--delete``).
    """
    bucket, prefix = datasets.split_uri(uri)
    target = Path(os.environ.get(CACHE_ENV, "var/datasets")) / bucket / prefix
    try:
        done = datasets.sync(uri, target, delete=True)
    except datasets.DatasetError as exc:
        raise DataError(f"cannot sync the training data from {uri}: {exc}") from None
    log.info("data set %s synced from %s into %s", done["sha256"], uri, target)
    return target


def verify_files(root: Path, paths: list[str]) -> str | None:
    """Check the files a run will read against ``root``'s manifest; its sha256, or None.

    Raises :class:`DataError` naming the first file that fails its hash, is missing, or is
    not listed. Without a manifest the data is unverified: logged, and None for the card.
    """
    if not (root / datasets.MANIFEST).is_file():
        log.warning(
            "data unverified: %s has no %s (model.datasets sync writes one); the card "
            "records manifest_sha256: null",
            root,
            datasets.MANIFEST,
        )
        return None
    t0 = time.monotonic()
    relative = [Path(p).relative_to(root).as_posix() for p in paths]
    try:
        sha = datasets.verify(root, relative)
    except datasets.DatasetError as exc:
        raise DataError(f"training data failed its manifest: {exc}") from None
    log.info(
        "data verified: %d files match %s (data set %s, %.1fs)",
        len(relative),
        datasets.MANIFEST,
        sha,
        time.monotonic() - t0,
    )
    return sha


def manifest_sha256(root: str | os.PathLike) -> str | None:
    """The sha256 of ``root``'s manifest (the data set version), None without one."""
    path = Path(root) / datasets.MANIFEST
    return datasets.digest(path.read_bytes()) if path.is_file() else None


def patient_id(path: str | os.PathLike) -> str:
    """The patient a file belongs to, from the Kermany naming scheme.

    ``person123_bacteria_456`` -> ``person123``; ``IM-0115-0001`` -> ``IM-0115``;
    ``NORMAL2-IM-1326-0001`` -> ``NORMAL2-IM-1326``; anything else is its own patient.
    """
    stem = Path(path).stem
    match = _PERSON.match(stem) or _SEQUENCE.match(stem)
    return match.group(1) if match else stem


def family(pid: str) -> str:
    """The naming family of a patient id: ``person``, ``IM-#``, ``NORMAL#-IM-#``.

    Each family numbers its patients in order of arrival, so the highest numbers of a family
    are its latest patients (how :func:`shifted_split` mimics new patients).
    """
    return re.sub(r"\d+", "#", pid)


def patient_number(pid: str) -> int:
    """The last number in a patient id (``person123`` -> 123, ``IM-0115`` -> 115), else -1."""
    match = _LAST_NUMBER.search(pid)
    return int(match.group(1)) if match else -1


def shifted_split(split: Split, fraction: float) -> tuple[Split, Split]:
    """(earlier patients, latest patients): the top ``fraction`` of each family by patient id.

    A random patient split asks how the model does on *other* patients of the same period; a
    held-out range of the latest ids asks how it does on patients who arrive later, the way a
    deployed model meets them (the public Kermany test split, from another period, scored
    AUC 0.934 against the carve-out's 0.993). Each family is cut separately so both classes
    (whose families differ) keep their share.
    """
    by_family: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, path in enumerate(split.paths):
        pid = patient_id(path)
        by_family[family(pid)][pid].append(i)
    late: list[int] = []
    for patients in by_family.values():
        target = fraction * sum(len(idx) for idx in patients.values())
        taken = 0
        for pid in sorted(patients, key=lambda p: (patient_number(p), p), reverse=True):
            if taken >= target:
                break
            late.extend(patients[pid])
            taken += len(patients[pid])
    late_set = set(late)
    early = [i for i in range(len(split.paths)) if i not in late_set]
    return split.subset(early), split.subset(sorted(late))


def list_images(folder: Path) -> Split:
    """Every image under ``folder/{NORMAL,PNEUMONIA}``, sorted so runs are reproducible."""
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in EXTENSIONS and path.is_file():
                paths.append(str(path))
                labels.append(label)
    return Split(paths, labels)


def has_classes(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in CLASSES)


def patient_split(
    split: Split, fractions: tuple[float, ...], seed: int = 1337
) -> tuple[Split, ...]:
    """Carve ``split`` into len(fractions)+1 parts, by patient and stratified by class.

    Patients are grouped by their (majority) label and each group is shuffled with ``seed``
    and cut at the same fractions, so every part keeps the class balance and no patient is
    in two parts. The first part gets what the fractions leave over (the training set).
    """
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, path in enumerate(split.paths):
        by_patient[patient_id(path)].append(i)
    strata: dict[int, list[str]] = defaultdict(list)
    for pid, idx in sorted(by_patient.items()):
        strata[round(np.mean([split.labels[i] for i in idx]))].append(pid)
    rng = random.Random(seed)  # noqa: S311 - a reproducible split, not a secret
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for _, pids in sorted(strata.items()):
        rng.shuffle(pids)
        n_images = sum(len(by_patient[p]) for p in pids)
        targets = [f * n_images for f in fractions]
        part, filled = 1, 0
        for pid in pids:
            while part <= len(fractions) and filled >= targets[part - 1]:
                part, filled = part + 1, 0
            dest = part if part <= len(fractions) else 0
            parts[dest].extend(by_patient[pid])
            filled += len(by_patient[pid]) if dest else 0
    return tuple(
        Split([split.paths[i] for i in sorted(p)], [split.labels[i] for i in sorted(p)])
        for p in parts
    )


def training_splits(
    root: Path,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 1337,
    shift_fraction: float = 0.0,
    calib_fraction: float = 0.0,
) -> dict[str, Split]:
    """The splits of a run: given folders where usable, else carved from train/.

    - ``shift_val`` / ``shift_test`` (when ``shift_fraction`` > 0 and no test/ is given): the
      latest ``shift_fraction`` of patient ids of each family (:func:`shifted_split`), halved
      by patient. ``shift_val`` is where recipes are compared; ``shift_test`` is held out and
      only reported.
    - from the earlier patients, by patient and stratified: ``val`` (early stopping and the
      threshold), ``test`` (held out, in-dataset), ``calib`` (the probability calibration,
      disjoint from the threshold's split) and ``train`` (the rest).

    ``test`` is a held-out carve-out that neither training nor threshold selection sees; when
    the root has its own ``test/`` (the published Kermany test set) that is used instead.
    """
    train_dir = root / "train" if (root / "train").is_dir() else root
    full = list_images(train_dir)
    if not full.paths:
        raise DataError(f"no NORMAL/PNEUMONIA images under {train_dir}. {WHERE_TO_GET}")
    given_val = list_images(root / "val") if (root / "val").is_dir() else Split([], [])
    given_test = list_images(root / "test") if (root / "test").is_dir() else Split([], [])
    empty = Split([], [])
    shifted = {"shift_val": empty, "shift_test": empty}
    if shift_fraction > 0 and not given_test.paths:
        full, late = shifted_split(full, shift_fraction)
        shift_test, shift_val = patient_split(late, (0.5,), seed)
        shifted = {"shift_val": shift_val, "shift_test": shift_test}
    fractions = []
    if len(given_val) < MIN_VAL_IMAGES:
        fractions.append(val_fraction)
    if not given_test.paths and test_fraction > 0:
        fractions.append(test_fraction)
    if calib_fraction > 0:
        fractions.append(calib_fraction)
    parts = list(patient_split(full, tuple(fractions), seed))
    splits = {"train": parts.pop(0)}
    splits["val"] = given_val if len(given_val) >= MIN_VAL_IMAGES else parts.pop(0)
    splits["test"] = given_test if given_test.paths else (parts.pop(0) if parts else empty)
    if calib_fraction > 0:
        splits["calib"] = parts.pop(0)
    if shift_fraction > 0:
        splits.update(shifted)
    return splits


def splits_from_card(root: Path, card: dict | None) -> dict[str, Split]:
    """Rebuild a run's splits from the seed and fractions its card records."""
    cfg = (card or {}).get("training_data", {}).get("split", {})
    return training_splits(
        root,
        cfg.get("val_fraction", 0.1),
        cfg.get("test_fraction", 0.1),
        cfg.get("seed", 1337),
        shift_fraction=cfg.get("shift_fraction", 0.0),
        calib_fraction=cfg.get("calib_fraction", 0.0),
    )


def evaluation_split(
    root: Path, card: dict | None = None, which: str = "test"
) -> tuple[str, Split]:
    """What ``model.evaluate`` scores: test/, else a bare class folder, else the carved splits.

    For a root holding only ``train/`` the model's own held-out carve-out (``which``: ``test``
    or ``shift_test``) is rebuilt from the seed and fractions in its card (evaluating on
    training images would mean nothing).
    """
    if has_classes(root / "test"):
        return "test", list_images(root / "test")
    if has_classes(root) and not (root / "train").is_dir():
        return root.name, list_images(root)
    if (root / "train").is_dir():
        splits = splits_from_card(root, card)
        if which in splits and splits[which].paths:
            return which, splits[which]
        name = "test" if splits["test"].paths else "val"
        return name, splits[name]
    raise DataError(f"no test/, train/ or NORMAL/ + PNEUMONIA/ under {root}. {WHERE_TO_GET}")


def load_image(path: str, size: int) -> np.ndarray:
    """One file -> (size, size, 3) uint8, through the serving preprocessing."""
    with open(path, "rb") as fh:
        return preprocess.prepare(fh.read(), size).astype(np.uint8)


def dataset(split: Split, size: int, cache: str | None = None):
    """A tf.data pipeline of (uint8 image, float label), streamed from disk and cached.

    ``cache`` is a file prefix (the small resized tensors are written there on the first pass),
    ``""`` for an in-memory cache, or ``None`` for none (one-off scoring streams from disk).
    """
    import tensorflow as tf

    def _load(path):
        return load_image(path.decode(), size)

    def _map(path, label):
        image = tf.numpy_function(_load, [path], tf.uint8, stateful=False)
        image.set_shape((size, size, 3))
        return image, tf.cast(label, tf.float32)

    ds = tf.data.Dataset.from_tensor_slices((split.paths, split.labels))
    ds = ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE)
    return ds if cache is None else ds.cache(cache)


def class_weights(labels: list[int]) -> dict[int, float]:
    """Weights that make both classes count equally in the loss (keras-io x-ray habit)."""
    n = len(labels)
    n_pos = int(sum(labels))
    n_neg = n - n_pos
    if not n_pos or not n_neg:
        return {0: 1.0, 1: 1.0}
    return {0: n / (2.0 * n_neg), 1: n / (2.0 * n_pos)}
