"""Quality of every serving backend on a trained model, on this CPU.

Reduced precision (bf16, int8) is a trade each host has to earn (model/serving/selection.py):
this scores Keras fp32 and every backend the host can run on the same held-out X-rays of
the model's own data (the validation and latest-patients test splits, rebuilt from the card's
split parameters: in-dataset figures) and prints ROC AUC, its loss against fp32, and the
sensitivity and specificity at the card's threshold, with the machine and its load.

    python -m bench.backend_quality [--store var/models] [--version V] [--data DIR]

Results: a table on stdout and var/bench/backend_quality.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench import common
from devstack.settings import TRAIN_224
from model import preprocess
from model.serving import selection
from model.serving.predictor import BACKENDS, load_predictor
from model.store import LocalStore
from model.training import data as model_data


def held_out(card: dict, root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The card's validation and shift_test splits as pixels at the model's size."""
    splits = model_data.splits_from_card(model_data.resolve_root(root), card)
    size = int(card["input_size"])
    out = {}
    for name in ("val", "shift_test"):
        s = splits.get(name)
        if s is not None and s.paths:
            pixels = np.stack([preprocess.prepare(Path(p).read_bytes(), size) for p in s.paths])
            out[name] = (pixels, np.asarray(s.labels))
    return out


def main(argv: list[str] | None = None) -> None:
    from sklearn.metrics import roc_auc_score

    p = argparse.ArgumentParser(prog="python -m bench.backend_quality")
    p.add_argument("--store", default=str(common.ROOT / "var" / "models"))
    p.add_argument("--version", default=None)
    p.add_argument("--data", default=str(TRAIN_224))
    args = p.parse_args(argv)
    store = LocalStore(args.store)
    version = args.version or store.current_version()
    model_dir = store.fetch(version)
    card = json.loads((model_dir / "model_card.json").read_text())
    threshold = float(card["threshold"])
    sets = held_out(card, Path(args.data))
    load_before = common.loadavg()
    rows, results = [], []
    cache = common.OUT_DIR / "quality-cache"
    for backend in ["keras", *selection.available()]:
        predictor = load_predictor(model_dir, backend, max_batch=32, cache_dir=cache)
        if predictor.backend != backend:
            continue
        for name, (pixels, labels) in sets.items():
            # Calibrated already: the predictor serves on the threshold's scale.
            probs = np.concatenate(
                [predictor.predict(pixels[i : i + 32]) for i in range(0, len(pixels), 32)]
            )
            positive = probs >= threshold
            results.append(
                {
                    "backend": backend,
                    "precision": BACKENDS[backend],
                    "split": name,
                    "images": len(labels),
                    "roc_auc": float(roc_auc_score(labels, probs)),
                    "sensitivity": float(positive[labels == 1].mean()),
                    "specificity": float((~positive[labels == 0]).mean()),
                }
            )
    reference = {r["split"]: r["roc_auc"] for r in results if r["backend"] == "keras"}
    for r in results:
        r["auc_loss"] = reference[r["split"]] - r["roc_auc"]
        rows.append(
            [
                r["backend"],
                r["precision"],
                r["split"],
                r["images"],
                round(r["roc_auc"], 4),
                round(r["auc_loss"], 4),
                round(r["sensitivity"], 4),
                round(r["specificity"], 4),
            ]
        )
    headers = ["backend", "precision", "split", "images", "AUC", "loss", "sens", "spec"]
    text = common.table(headers, rows)
    res = {
        "machine": common.machine(),
        "load": [load_before, common.loadavg()],
        "version": version,
        "threshold": threshold,
        "results": results,
    }
    print(f"model {version}, threshold {threshold:.3f} (calibrated scale)")
    print(common.describe(res["machine"]) + f"; load {load_before} -> {res['load'][1]}")
    common.finish("backend_quality", res, text)


if __name__ == "__main__":
    main()
