"""``python -m model.train``: train, evaluate and publish the ResNet50 (the training CLI).

``make model``, scripts/train_if_missing.sh and the GPU server's bootstrap all call this
command. The options become one frozen :class:`~model.training.config.TrainConfig` (whose
defaults are the local CPU recipe) and :func:`model.training.recipe.run` does the rest; see
``python -m model.train --help`` and model/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from model.training.config import RECIPES, TrainConfig

DEFAULT = TrainConfig()


def parser(base: TrainConfig = DEFAULT) -> argparse.ArgumentParser:
    """The options, one per :class:`TrainConfig` field, defaulting to ``base``'s recipe."""
    p = argparse.ArgumentParser(
        prog="python -m model.train", description="Train, evaluate and publish the ResNet50."
    )
    add = p.add_argument
    add(
        "--recipe",
        choices=list(RECIPES),
        default=base.recipe,
        help="named defaults: local-cpu (make model) or gpu (the GPU box); options given win",
    )
    add(
        "--allow-cpu",
        action="store_true",
        help="run a recipe that needs a GPU on the CPU anyway (deliberately)",
    )
    add(
        "--data",
        default=base.data,
        help="Kermany-layout folder (default $PNEUMONIA_DATA or ../shared/data/chest_xray_224), "
        "or an s3://bucket/prefix data set, synced into $DATASET_CACHE first",
    )
    add(
        "--weights",
        default=base.weights,
        help="imagenet | none | PATH to ResNet50 notop weights",
    )
    add("--img-size", type=int, default=base.img_size)
    add(
        "--epochs",
        type=int,
        default=base.epochs,
        help="epochs (fine-tuning epochs when pretrained)",
    )
    add(
        "--head-epochs",
        type=int,
        default=base.head_epochs,
        help="pretrained only: epochs training the head alone",
    )
    add("--fine-tune-layers", type=int, default=base.fine_tune_layers)
    add("--batch-size", type=int, default=base.batch_size)
    add(
        "--steps-per-epoch",
        type=int,
        default=base.steps_per_epoch,
        help="batches between validations (0 = one full pass over train)",
    )
    add(
        "--lr",
        type=float,
        default=base.lr,
        help="initial learning rate (default 1e-3 scratch, 1e-5 pretrained)",
    )
    add("--head-lr", type=float, default=base.head_lr)
    add(
        "--decay-steps",
        type=int,
        default=base.decay_steps,
        help="learning-rate decay interval (default 10000 pretrained, 40 from scratch)",
    )
    add(
        "--decay-rate",
        type=float,
        default=base.decay_rate,
        help="learning-rate decay factor (default 0.95 pretrained, 0.85 from scratch)",
    )
    add(
        "--mixed-precision",
        choices=["auto", "on", "off"],
        default=base.mixed_precision,
        help="mixed_float16 training: auto = on a GPU only (the model is saved float32)",
    )
    add("--augment", type=float, default=base.augment, help="augmentation strength, 0 = off")
    add(
        "--patience",
        type=int,
        default=base.patience,
        help="early stopping patience (epochs without better val AUC)",
    )
    add(
        "--max-minutes",
        type=float,
        default=base.max_minutes,
        help="training time budget, 0 = none",
    )
    add("--val-fraction", type=float, default=base.val_fraction)
    add("--test-fraction", type=float, default=base.test_fraction)
    add(
        "--shift-fraction",
        type=float,
        default=base.shift_fraction,
        help="latest patient ids of each family held out (shift_val + shift_test), 0 = none",
    )
    add(
        "--calib-fraction",
        type=float,
        default=base.calib_fraction,
        help="patients the probability calibration is fitted on, 0 = uncalibrated",
    )
    add(
        "--intensity-augment",
        type=float,
        default=base.intensity_augment,
        help="gamma / contrast / noise / blur augmentation strength, 0 = off",
    )
    add("--label-smoothing", type=float, default=base.label_smoothing)
    add("--bootstrap", type=int, default=base.bootstrap, help="resamples for 95 %% intervals")
    add("--seed", type=int, default=base.seed)
    add("--target-sensitivity", type=float, default=base.target_sensitivity)
    add(
        "--limit",
        type=int,
        default=base.limit,
        help="at most N images per class and split (smoke tests)",
    )
    add("--output", type=Path, default=None, help="output directory (default var/runs/<version>)")
    add("--version", default=None, help="model version (default UTC time + git short sha)")
    add(
        "--publish",
        default=None,
        help="model store to publish to: a path (var/models) or s3://bucket/prefix",
    )
    add(
        "--verbose",
        type=int,
        default=base.verbose,
        help="Keras progress: 1 bar, 2 one line per epoch",
    )
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Command-line options over the named recipe's defaults, frozen."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", choices=list(RECIPES), default=DEFAULT.recipe)
    base = TrainConfig.from_recipe(pre.parse_known_args(argv)[0].recipe)
    return TrainConfig(needs_gpu=base.needs_gpu, **vars(parser(base).parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 when a model is trained, 2 without data, 3 without a needed GPU."""
    config = parse_config(argv)
    from model.training.data import DataError
    from model.training.devices import NoGPU, require_gpu
    from model.training.recipe import run

    try:
        if config.needs_gpu and not config.allow_cpu:
            print(f"training on {require_gpu()}", file=sys.stderr)
        out = run(config)
    except NoGPU as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
