"""``python -m model.promote``: serve a candidate version only on evidence; roll back the same way.

    python -m model.promote VERSION --reason TEXT [--store URI] [--data DIR] [--backend B]
                            [--by NAME] [--force] [--max-auc-drop 0.005]
                            [--max-sensitivity-drop 0.02]
    python -m model.promote --list            # versions (current marked) and the history

The candidate VERSION and the current version are scored on the *same* labelled X-rays,
through the backend the workers will serve them with (``INFERENCE_BACKEND``; ``auto`` makes
the choice a worker on this host would make), each at its own card's calibration and
threshold: the scale the worker serves. Both are printed side by side with bootstrap 95 %
intervals. The candidate is refused (exit 1, nothing changed) when its ROC AUC is lower than
current's by more than ``--max-auc-drop`` or its sensitivity (at its threshold) by more than
``--max-sensitivity-drop``, unless ``--force``; a reason is required for every promotion.

On success an immutable promotion record (who, when, why, the figures, the tolerance) is
written to the store's ``promotions/`` first, then ``current`` moves atomically; the workers
pick the version up within MODEL_POLL_SECONDS and show the record and the history on the
model card. Rolling back is promoting an older version (the record says ``rollback: true``).

Which images: ``--data DIR`` (a Kermany-layout folder, ``NORMAL/`` + ``PNEUMONIA/``, such as
``python -m model.feedback export``'s output or an external set). Without it, the held-out
test patients of the training data, rebuilt from the cards' split, and only when both cards
record the same data and split (then neither version trained, calibrated or chose its
threshold on them); otherwise the command asks for ``--data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from model.store import StoreError, open_store

log = logging.getLogger("model.promote")

MAX_AUC_DROP = 0.005
MAX_SENSITIVITY_DROP = 0.02
EXIT_REFUSED, EXIT_ERROR = 1, 2


class PromoteError(RuntimeError):
    """The comparison cannot be made as asked; the message says what to give instead."""


# --- the images --------------------------------------------------------------------------


def scoring_set(data: str | None, candidate: dict, current: dict | None):
    """(description, paths, labels) of the labelled X-rays both versions are scored on."""
    from model.training import data as model_data

    if data:
        root = Path(data)
        folder = root if model_data.has_classes(root) else root / "test"
        if not model_data.has_classes(folder):
            raise PromoteError(f"{root} holds no NORMAL/ and PNEUMONIA/ folders (Kermany layout)")
        split = model_data.list_images(folder)
        where = f"--data folder {folder.name}"
    else:
        split, where = _held_out(candidate, current)
    counts = split.counts()
    if not 0 < counts["PNEUMONIA"] < counts["total"]:
        raise PromoteError(f"{where} needs X-rays of both classes: {counts}")
    text = f"{where}: {counts['total']} X-rays ({counts['NORMAL']} normal, "
    return text + f"{counts['PNEUMONIA']} pneumonia)", split.paths, split.labels


def _held_out(candidate: dict, current: dict | None):
    """The candidate's held-out test patients, when that is fair to both versions."""
    from model.training import data as model_data

    facts = candidate.get("training_data") or {}
    if current is not None and not same_training_data(candidate, current):
        raise PromoteError(
            "the two versions were not trained on the same data and split, so no held-out "
            "set is fair to both: give --data DIR (NORMAL/ + PNEUMONIA/ X-rays neither "
            "trained on, e.g. `python -m model.feedback export --out DIR`)"
        )
    root = Path(str(facts.get("path", "")))
    if not facts.get("path") or not root.is_dir():
        raise PromoteError(
            f"the training data the card names ({facts.get('path')}) is not on this host: "
            "run this where it is, or give --data DIR"
        )
    splits = model_data.splits_from_card(model_data.resolve_root(root), candidate)
    held = [splits[n] for n in ("test", "shift_test") if n in splits and splits[n].paths]
    if not held:
        raise PromoteError("the card's split holds no held-out test patients: give --data DIR")
    paths = [p for s in held for p in s.paths]
    labels = [y for s in held for y in s.labels]
    split = facts.get("split", {})
    where = (
        f"held-out test patients of {root.name} (the cards' split: seed {split.get('seed')}, "
        f"test {split.get('test_fraction')}, shift {split.get('shift_fraction', 0)}); both "
        "cards record the same data and split, so neither version trained, calibrated or "
        "chose its threshold on them"
    )
    return model_data.Split(paths, labels), where


def same_training_data(a: dict, b: dict) -> bool:
    """Both cards record the same data (manifest sha256, else path and counts) and split."""
    da, db = a.get("training_data") or {}, b.get("training_data") or {}
    if not da.get("split") or da.get("split") != db.get("split"):
        return False
    if da.get("manifest_sha256") or db.get("manifest_sha256"):
        return da.get("manifest_sha256") == db.get("manifest_sha256")
    return bool(da.get("path")) and (da.get("path"), da.get("splits")) == (
        db.get("path"),
        db.get("splits"),
    )


# --- scoring -----------------------------------------------------------------------------


def score(store, version: str, backend: str, paths, labels, settings, bootstrap: int) -> dict:
    """One version's figures on the images, as a worker serves it (backend, calibration,
    threshold)."""
    from model.evaluate import TARGET_SENSITIVITY, metrics_with_intervals
    from model.serving.predictor import load_predictor

    predictor = load_predictor(
        store.fetch(version),
        backend=backend,
        max_batch=settings.max_batch,
        threads=settings.threads,
        cache_dir=settings.model_cache_dir,
        calibration_data=settings.calibration_data or None,
        check_images=settings.check_images,
        max_auc_loss=settings.max_auc_loss,
    )
    size = predictor.input_size
    probs = []
    for i in range(0, len(paths), 32):
        batch = [_pixels(Path(p), size) for p in paths[i : i + 32]]
        probs.append(predictor.predict(np.stack(batch)))
    target = (predictor.card.get("metrics") or {}).get(
        "threshold_target_sensitivity", TARGET_SENSITIVITY
    )
    m = metrics_with_intervals(
        labels, np.concatenate(probs), predictor.threshold, target, bootstrap
    )
    return {
        "roc_auc": round(m["roc_auc"], 4),
        "sensitivity": round(m["sensitivity"], 4),
        "specificity": round(m["specificity"], 4),
        "threshold": round(float(predictor.threshold), 6),
        "images": len(labels),
        "backend": predictor.backend,
        "ci95": m["ci95"],
    }


def _pixels(path: Path, size: int) -> np.ndarray:
    """One X-ray as the worker prepares it; an unreadable one stops the comparison (a score
    without it would not be on the same images for both versions)."""
    from model import preprocess

    try:
        return preprocess.prepare(path.read_bytes(), size)
    except (preprocess.PreprocessError, OSError) as exc:
        raise PromoteError(
            f"an image in {path.parent.name}/ cannot be read ({type(exc).__name__}): remove it "
            "or export the set again; nothing changed"
        ) from exc


def shortfalls(candidate: dict, current: dict | None, tolerance: dict) -> list[str]:
    """Why the candidate is worse than current beyond the tolerance (empty: it is not)."""
    if current is None:
        return []
    out = []
    for key, name in (("roc_auc", "auc"), ("sensitivity", "sensitivity")):
        drop = current[key] - candidate[key]
        if drop > tolerance[name] + 1e-12:
            out.append(
                f"{key} {candidate[key]:.4f} is {drop:.4f} below current's {current[key]:.4f} "
                f"(tolerance {tolerance[name]})"
            )
    return out


# --- output ------------------------------------------------------------------------------


def side_by_side(versions: dict, cards: dict, figures: dict) -> str:
    """The comparison as printed: facts of each card, then the figures with intervals."""

    def cell(role, key):
        f = figures.get(role)
        if f is None:
            return "-"
        ci = f["ci95"].get(key)
        return f"{f[key]:.4f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")

    def fact(role, key):
        card = cards.get(role) or {}
        if key == "manifest":
            return str((card.get("training_data") or {}).get("manifest_sha256") or "-")[:16]
        return str(card.get(key, "-"))[:24]

    rows = [
        ("", *(f"{r} {versions[r] or '(none)'}" for r in ("candidate", "current"))),
        ("trained at", fact("candidate", "trained_at"), fact("current", "trained_at")),
        ("git sha", fact("candidate", "git_sha"), fact("current", "git_sha")),
        ("data manifest sha256", fact("candidate", "manifest"), fact("current", "manifest")),
    ]
    for role_key, label in (("backend", "backend"), ("images", "images")):
        rows.append(
            (label, *(str((figures.get(r) or {}).get(role_key, "-")) for r in figures)),
        )
    for key, label in (("roc_auc", "ROC AUC (95% CI)"), ("sensitivity", "sensitivity"),
                       ("specificity", "specificity")):  # fmt: skip
        rows.append((label, cell("candidate", key), cell("current", key)))
    rows.append(
        ("threshold", *(str((figures.get(r) or {}).get("threshold", "-")) for r in figures))
    )
    width = max(len(b) for _, b, _ in rows) + 2  # version names are long: never run together
    return "\n".join(f"{a:<22}{b:<{width}}{c}" for a, b, c in rows)


def history_text(store) -> str:
    """Versions (current marked) and the promotion records, newest first."""
    current = store.current_version()
    lines = ["versions (* = current):"]
    lines += [("  * " if v == current else "    ") + v for v in store.versions()]
    lines.append("promotions, newest first:")
    for r in store.promotions() or []:
        flags = "".join(
            (" rollback" if r.get("rollback") else "", " FORCED" if r.get("forced") else "")
        )
        lines.append(
            f"  {r['at']}  {r.get('previous') or '(none)'} -> {r['version']}{flags}  "
            f"by {r['by']}: {r['reason']}"
        )
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------------


def who(by: str | None) -> str:
    """The person promoting: --by, else the login behind sudo, else the login."""
    name = by or os.environ.get("SUDO_USER") or os.environ.get("USER") or ""
    if not name.strip():
        raise PromoteError("cannot tell who is promoting: give --by NAME")
    return name.strip()


def promote(args, settings) -> int:
    """Score, compare, then refuse, or record and move the pointer; the exit status."""
    store = open_store(args.store, settings.model_cache_dir)
    version, by = args.version, who(args.by)
    if version not in store.versions():
        raise PromoteError(f"{version} is not in {args.store}: {', '.join(store.versions())}")
    previous = store.current_version()
    if previous == version:
        print(f"{version} is current already; nothing changed")
        return 0
    cards = {"candidate": store.card(version), "current": previous and store.card(previous)}
    data, paths, labels = scoring_set(args.data, cards["candidate"], cards["current"])
    print(f"scoring on {data}\nbackend {args.backend} (INFERENCE_BACKEND, as the workers)")
    figures = {
        role: score(store, v, args.backend, paths, labels, settings, args.bootstrap) if v else None
        for role, v in (("candidate", version), ("current", previous))
    }
    print(side_by_side({"candidate": version, "current": previous}, cards, figures))
    for role, card in cards.items():
        manifest = ((card or {}).get("training_data") or {}).get("manifest_sha256")
        if manifest:
            print(f"{role} trained on data manifest sha256 {manifest}")
    tolerance = {"auc": args.max_auc_drop, "sensitivity": args.max_sensitivity_drop}
    print(f"tolerance: ROC AUC may drop {tolerance['auc']}, sensitivity {tolerance['sensitivity']}")
    worse = shortfalls(figures["candidate"], figures["current"], tolerance)
    if worse and not args.force:
        print(f"refused: {version} is worse than {previous}: " + "; ".join(worse), file=sys.stderr)
        print("nothing changed (promote anyway with --force --reason TEXT)", file=sys.stderr)
        return EXIT_REFUSED
    record = {
        "version": version,
        "previous": previous,
        "rollback": any(
            version in (r.get("version"), r.get("previous")) for r in store.promotions()
        ),
        "by": by,
        "at": utc_now(),
        "reason": args.reason.strip(),
        "forced": bool(worse),
        "backend": _backend_text(args.backend, figures),
        "data": data,
        "tolerance": tolerance,
        "comparison": {role: _headline(f) for role, f in figures.items()},
    }
    key = store.add_record(record)  # the audit trail first: no unrecorded promotion
    store.set_current(version)
    log.info("promotion record %s: %s", key, json.dumps(record))
    forced = "; FORCED past: " + "; ".join(worse) if worse else ""
    print(f"current -> {version} (was {previous}); record {key}{forced}")
    return 0


def utc_now() -> str:
    """ISO-8601 UTC with microseconds (record names sort by it)."""
    now = time.time_ns() // 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1_000_000)) + (
        f".{now % 1_000_000:06d}Z"
    )


def _headline(figures: dict | None) -> dict | None:
    keys = ("roc_auc", "sensitivity", "specificity", "threshold", "images")
    return None if figures is None else {k: figures[k] for k in keys}


def _backend_text(requested: str, figures: dict) -> str:
    used = {f["backend"] for f in figures.values() if f}
    return requested if used == {requested} else f"{requested} ({', '.join(sorted(used))})"


def main(argv: list[str] | None = None) -> int:
    from model.serving.settings import WorkerSettings

    settings = WorkerSettings()
    p = argparse.ArgumentParser(prog="python -m model.promote", description=__doc__.split("\n")[0])
    p.add_argument("version", nargs="?", help="the version to make current (candidate or older)")
    p.add_argument("--store", default=settings.model_store, help="default: MODEL_STORE")
    p.add_argument("--data", help="Kermany-layout folder (NORMAL/ PNEUMONIA/) to score both on")
    p.add_argument("--backend", default=settings.backend, help="default: INFERENCE_BACKEND")
    p.add_argument("--by", help="who promotes (default: $SUDO_USER or $USER)")
    p.add_argument("--reason", help="why (required for every promotion)")
    p.add_argument("--force", action="store_true", help="promote even if worse beyond tolerance")
    p.add_argument("--max-auc-drop", type=float, default=MAX_AUC_DROP)
    p.add_argument("--max-sensitivity-drop", type=float, default=MAX_SENSITIVITY_DROP)
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% intervals")
    p.add_argument(
        "--list", "--history", dest="list", action="store_true", help="versions and promotions"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.list:
            print(history_text(open_store(args.store, settings.model_cache_dir)))
            return 0
        if not args.version:
            p.error("give the VERSION to promote (see --list)")
        if not (args.reason or "").strip():
            p.error("--reason TEXT is required: say why this version should be served")
        return promote(args, settings)
    except (PromoteError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
