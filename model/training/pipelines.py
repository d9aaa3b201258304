"""Data for one run: the three patient-disjoint splits and their cached tf.data pipelines.

Each image is decoded and resized once (:func:`warm_caches`, with a progress bar) into a
per-run cache under the output directory; epochs then read the small cached tensors.
"""

from __future__ import annotations

import hashlib
import logging
import random
import tempfile
from pathlib import Path

from model.training import data
from model.training.config import TrainConfig

log = logging.getLogger("model.train")  # one name for a run's whole train.log


def load_data(config: TrainConfig, reporter):
    """The splits of ``config.data`` and one cached pipeline per non-empty split."""
    reporter.update(phase="loading", message="listing images")
    root = data.resolve_root(config.data)
    splits = data.training_splits(
        root,
        config.val_fraction,
        config.test_fraction,
        config.seed,
        shift_fraction=config.shift_fraction,
        calib_fraction=config.calib_fraction,
    )
    if config.limit:
        splits = {k: limit(v, config.limit, config.seed) for k, v in splits.items()}
    if not splits["train"].paths or not splits["val"].paths:
        raise data.DataError(
            f"too few patients under {root} for the held-out fractions: lower "
            "--val-fraction, --test-fraction, --calib-fraction or --shift-fraction"
        )
    for name, split in splits.items():
        log.info("%-5s %s (%d patients)", name, split.counts(), len(split.patients()))
    data.verify_files(root, [p for split in splits.values() for p in split.paths])
    cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=config.output))
    pipelines = {
        name: data.dataset(split, config.img_size, str(cache_dir / f"{name}-{_digest(split)}"))
        for name, split in splits.items()
        if split.paths
    }
    warm_caches(pipelines, splits, reporter)
    return root, splits, pipelines


def warm_caches(pipelines, splits, reporter) -> None:
    """Decode every image once (with a progress bar) so epochs read the small cached tensors."""
    from tqdm import tqdm

    total = sum(len(splits[name]) for name in pipelines)
    with tqdm(total=total, desc="decode + resize (model.preprocess)", unit="img") as bar:
        for name, ds in pipelines.items():
            for images, _ in ds.batch(256):
                bar.update(int(images.shape[0]))
            reporter.update(phase="loading", message=f"{name} images decoded")


def limit(split: data.Split, n: int, seed: int) -> data.Split:
    """At most ``n`` images per class (smoke tests and quick experiments)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible split, not a secret
    keep = []
    for label in (0, 1):
        idx = [i for i, y in enumerate(split.labels) if y == label]
        keep += sorted(rng.sample(idx, min(n, len(idx))))
    keep.sort()
    return data.Split([split.paths[i] for i in keep], [split.labels[i] for i in keep])


def _digest(split: data.Split) -> str:
    """Names a split's cache by its file list, so a cache never serves another split."""
    return hashlib.sha256("\n".join(split.paths).encode()).hexdigest()[:12]


def batched(ds, batch_size: int, shuffle: int = 0, seed: int = 0, intensity: float = 0.0):
    """Shuffled (when ``shuffle`` > 0), batched and prefetched for ``model.fit``.

    ``intensity`` > 0 adds :func:`intensity_augmentation` (training batches only).
    """
    import tensorflow as tf

    if shuffle:
        ds = ds.shuffle(min(shuffle, 4096), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if intensity > 0:
        ds = ds.map(
            lambda x, y: (intensity_augmentation(x, intensity), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def intensity_augmentation(images, strength: float):
    """Random gamma, contrast, Gaussian noise and blur per image: acquisition shift.

    Another machine, exposure or export changes a film's grey levels, contrast, noise and
    sharpness while the anatomy stays: these are the changes a model must shrug off to hold
    up on patients who arrive later. In the input pipeline rather than the model, so the
    served model file is unchanged (only standard layers) and serving never runs it.
    """
    import tensorflow as tf

    x = tf.cast(images, tf.float32) / 255.0
    n = tf.shape(x)[0]
    s = strength

    def per_image(lo, hi):
        return tf.random.uniform([n, 1, 1, 1], lo, hi)

    x = tf.pow(tf.clip_by_value(x, 1e-4, 1.0), tf.exp(per_image(-0.4 * s, 0.4 * s)))  # gamma
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * per_image(1 - 0.3 * s, 1 + 0.3 * s) + mean  # contrast
    blurred = tf.nn.avg_pool2d(x, 3, 1, "SAME")
    x = x + (blurred - x) * per_image(0.0, 0.6 * s)  # blur: up to 60 % of a 3x3 box
    x = x + tf.random.normal(tf.shape(x)[:3])[..., None] * per_image(0.0, 0.03 * s)  # noise
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0
