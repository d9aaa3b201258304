"""Readers' verdicts as labelled data: production disagreements become the next training set.

    python -m model.feedback export --out DIR [--since 2026-11-01] [--disagreements-only]

Writes every image a clinician has read, labelled with the *reader's* label, in the layout
``model.data`` reads (Kermany et al.'s class folders), plus one CSV row per verdict::

    DIR/NORMAL/<prediction id>.png|jpeg
    DIR/PNEUMONIA/<prediction id>.png|jpeg
    DIR/verdicts.csv   image, prediction_id, reader_label, model_label, agreement, probability,
                       threshold, model_version, reader, read_at, note, image_status

Verdicts of "not assessable" have a CSV row and no image (they are no label); a verdict whose
image has expired (IMAGE_TTL_SECONDS) keeps its row with ``image_status=expired``. Files are
named by prediction id, never by the uploaded file name (which can carry a patient's name),
and images hold only pixels (DICOM headers were dropped at upload). Train on it with
``python -m model.train --data DIR`` or merge it into a training folder.

Reads the job data directly (the ``jobs`` contract, like the workers do): ``REDIS_URL`` and
``REDIS_PREFIX``, the workers' settings, or ``--redis-url`` / ``--prefix``. The variables are
read here rather than through the worker's settings module so that an export does not load
the serving code.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import redis

from jobs.keys import DEFAULT_PREFIX
from jobs.queue import JobQueue
from jobs.verdicts import Agreement, Verdict, VerdictStore

CLASS_DIRS = {"Normal": "NORMAL", "Pneumonia": "PNEUMONIA"}
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpeg"}
COLUMNS = (
    "image",
    "prediction_id",
    "reader_label",
    "model_label",
    "agreement",
    "probability",
    "threshold",
    "model_version",
    "reader",
    "read_at",
    "note",
    "image_status",
)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _export_one(queue: JobQueue, v: Verdict, out: Path) -> tuple[str, str]:
    """Write the verdict's image under its reader's class; returns (relative path, status)."""
    folder = CLASS_DIRS.get(v.reader_label)
    if folder is None:
        return "", "not_assessable"
    record = queue.get(v.prediction_id)
    data = queue.image(v.prediction_id) if record else None
    if data is None:
        return "", "expired"
    name = f"{folder}/{v.prediction_id}{EXTENSIONS.get(record.media_type, '.bin')}"
    for other in CLASS_DIRS.values():  # a re-read moved the image to the other class
        for stale in (out / other).glob(f"{v.prediction_id}.*"):
            stale.unlink()
    (out / name).write_bytes(data)
    return name, "exported"


def export(
    client: redis.Redis,
    out: Path,
    prefix: str = DEFAULT_PREFIX,
    since: int | None = None,
    disagreements_only: bool = False,
) -> dict[str, int]:
    """Export the verdicts (newest first) to ``out``; returns counts for the summary."""
    queue = JobQueue(client, prefix=prefix)
    found = VerdictStore(client, prefix=prefix).recent(since=since)
    if disagreements_only:
        found = [v for v in found if v.agreement == Agreement.DISAGREE]
    for folder in CLASS_DIRS.values():
        (out / folder).mkdir(parents=True, exist_ok=True)
    counts = {"verdicts": len(found), "disagreements": 0, "expired": 0, "not_assessable": 0}
    counts.update({folder: 0 for folder in CLASS_DIRS.values()})
    tmp = out / "verdicts.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for v in found:
            image, status = _export_one(queue, v, out)
            counts["disagreements"] += v.agreement == Agreement.DISAGREE
            if status == "exported":
                counts[image.split("/")[0]] += 1
            else:
                counts[status] += 1
            writer.writerow(
                {
                    **{k: getattr(v, k) for k in COLUMNS if hasattr(v, k)},
                    "image": image,
                    "read_at": _iso(v.at),
                    "image_status": status,
                }
            )
    os.replace(tmp, out / "verdicts.csv")
    return counts


def _since(day: str | None) -> int | None:
    if not day:
        return None
    try:
        start = datetime.fromisoformat(day)
    except ValueError:
        sys.exit(f"--since wants a date like 2026-11-01, not {day!r}")
    return int(start.replace(tzinfo=start.tzinfo or UTC).timestamp() * 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m model.feedback", description=__doc__.split("\n")[0]
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    ex = verbs.add_parser("export", help="write the read images in class folders + verdicts.csv")
    ex.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    ex.add_argument("--since", help="only verdicts recorded on or after this date (UTC)")
    ex.add_argument("--disagreements-only", action="store_true",
                    help="only images the reader labelled unlike the model")  # fmt: skip
    ex.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ex.add_argument("--prefix", default=os.environ.get("REDIS_PREFIX", DEFAULT_PREFIX))
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(args.redis_url, socket_timeout=10)
    try:
        counts = export(client, args.out, args.prefix, _since(args.since), args.disagreements_only)
    except redis.RedisError as exc:
        sys.exit(f"cannot read the job data at REDIS_URL ({type(exc).__name__}): is Redis up?")
    print(
        f"{counts['verdicts']} verdicts ({counts['disagreements']} disagreements): "
        f"{counts['NORMAL']} NORMAL and {counts['PNEUMONIA']} PNEUMONIA images, "
        f"{counts['not_assessable']} not assessable, {counts['expired']} images expired "
        f"-> {args.out}/verdicts.csv"
    )


if __name__ == "__main__":
    main()
