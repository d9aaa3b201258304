"""Train: ResNet50 on chest X-rays, then evaluate, write the card and (optionally) publish.

Sections, in the order a run goes through them: Data (:mod:`model.training.pipelines`) ->
Model and Train (:mod:`model.training.fit`) -> Evaluate (:mod:`model.training.results`) ->
Publish (:mod:`model.publish`). :func:`run` is that order, for one :class:`TrainConfig`.
Publishing adds the run to the store as a *candidate* with all its artefacts;
``python -m model.promote`` decides whether it is served (except in an empty store).

Two recipes share this code:
- **from scratch** (``--weights none``, the local CPU model): everything trains, Adam at 1e-3
  with exponential decay; small input size so a 2-core CPU gets through enough epochs.
- **pretrained** (``--weights imagenet|PATH``, the GPU server): freeze the base and train the
  head, then unfreeze the last ``--fine-tune-layers`` layers (BatchNorm kept frozen and in
  inference mode), recompile and fine-tune at 1e-5.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from model import card as model_card
from model.training.config import TrainConfig
from model.training.versioning import git_sha, make_version

log = logging.getLogger("model.train")


def run(config: TrainConfig) -> Path:
    """The whole recipe; returns the output directory holding the model and its card."""
    from model.training.data import resolve_root
    from model.training.fit import configure_device, fit
    from model.training.pipelines import load_data
    from model.training.progress import Reporter
    from model.training.results import (
        build_card,
        evaluate_splits,
        fit_input_check,
        jsonable,
        save_for_serving,
        stopped_by,
        summary,
        write_quality_set,
    )

    resolve_root(config.data)  # no data: say where to get it before creating anything
    reporter = Reporter()
    t0 = time.monotonic()
    sha = git_sha()  # the code that trains, even if HEAD moves during the run
    version = config.version or make_version(sha=sha)
    config = dataclasses.replace(
        config, version=version, output=Path(config.output or Path("var/runs") / version)
    )
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    _log_to(out / "train.log")
    try:
        gpu = configure_device(config.mixed_precision)
        root, splits, pipelines = load_data(config, reporter)
        model, history, epochs_run, fit_seconds = fit(config, reporter, pipelines, splits, gpu)
        reporter.update(phase="evaluating", ratio=1.0, message="evaluating on held-out patients")
        report = evaluate_splits(model, config, splits, out)
        save_for_serving(model, out / "model.keras")
        card = build_card(config, sha, root, splits, report, epochs_run, fit_seconds, gpu)
        card["stopped_by"] = stopped_by(config, history, epochs_run)
        card["input_check"] = fit_input_check(pipelines, config.img_size)
        card["quality_check_set"] = write_quality_set(
            splits["val"], config.img_size, out / "quality.npz"
        )
        model_card.write(card, out)  # checksums the model and quality.npz
        (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "history.json").write_text(json.dumps(jsonable(history), indent=2) + "\n")
        (out / "checkpoint.keras").unlink(missing_ok=True)  # model.keras is the best
        log.info("val: %s", summary(report.get("val", {})))
        for name in ("test", "shift_val", "shift_test"):
            log.info("%s: %s", name, summary(report.get(name, {})))
        log.info(
            "stopped by %s; input check %s", card["stopped_by"], card["input_check"]["evaluation"]
        )
        log.info("model, card and evaluation in %s (%.0fs in all)", out, time.monotonic() - t0)
        if config.publish:
            from model.publish import publish

            reporter.update(phase="publishing", message=f"publishing {version} as a candidate")
            publish(out, config.publish)
        reporter.update(phase="done", ratio=1.0, eta_seconds=0, message=f"model {version} ready")
    except BaseException as exc:
        reporter.update(phase="failed", message=f"{type(exc).__name__}: {exc}"[:300])
        raise
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")  # the run's policy ends with it
        for cache_dir in out.glob("cache-*"):  # decoded tensors: per run, disposable
            shutil.rmtree(cache_dir, ignore_errors=True)
    return out


def _log_to(path: Path) -> None:
    """Log the run to ``path`` beside its model (and to stderr)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logger = logging.getLogger("model")
    for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        logger.removeHandler(old)  # one run, one log file (tests run several in a process)
        old.close()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logger.addHandler(handler)
