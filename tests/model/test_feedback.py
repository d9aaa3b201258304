"""``python -m model.feedback export``: readers' verdicts as a labelled folder + CSV.

Against a real redis-server: predictions are submitted and finished through the job contract
(as the API and a worker do), read by clinicians (jobs.verdicts, as the API records them),
then exported by the real command line.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import redis

from devstack.settings import ROOT
from jobs.queue import JobQueue
from jobs.record import Prediction, new_id
from jobs.verdicts import VerdictStore, decide
from model.training import data

from .conftest import jpeg_bytes


def scored(queue: JobQueue, label: str, probability: float, version: str, seed: int) -> Prediction:
    """Submit one image and finish it the way a worker does."""
    image = jpeg_bytes(seed)
    queue.submit(
        Prediction(id=new_id(), filename=f"Smith^John-{seed}.jpeg", media_type="image/jpeg"), image
    )
    (entry, pid), *_ = queue.read("w", count=1, block_ms=100)
    [record] = queue.start_batch([pid], "w")
    record.label, record.probability, record.threshold = label, probability, 0.5
    record.model_version = version
    queue.finish_batch([(entry, record)])
    return queue.get(pid)


def run_export(redis_url, out, *extra):
    argv = [sys.executable, "-m", "model.feedback", "export", "--out", str(out), *extra]
    env = {"REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_export_writes_the_readers_labels_in_the_kermany_layout(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    queue, store = JobQueue(client), VerdictStore(client)
    queue.ensure_group()
    cases = [  # model label, reader's choice, model version
        ("Pneumonia", "agree", "v1"),
        ("Pneumonia", "Normal", "v1"),
        ("Normal", "Pneumonia", "v2"),
        ("Normal", "not_assessable", "v2"),
        ("Normal", "agree", "v2"),
    ]
    preds = []
    for seed, (label, choice, version) in enumerate(cases):
        p = scored(queue, label, 0.8 if label == "Pneumonia" else 0.2, version, seed)
        store.record(decide(p, choice, f"dr.{seed}", note=f"note {seed}"))
        preds.append(p)
    client.delete(queue.keys.image(preds[4].id))  # its image has expired

    out = tmp_path / "feedback"
    done = run_export(redis_url, out)
    assert done.returncode == 0, done.stderr
    assert "5 verdicts (2 disagreements): 1 NORMAL and 2 PNEUMONIA images" in done.stdout
    assert "1 not assessable, 1 images expired" in done.stdout

    rows = {r["prediction_id"]: r for r in csv.DictReader((out / "verdicts.csv").open())}
    assert set(rows) == {p.id for p in preds}
    agreed, corrected, missed, unreadable, expired = (rows[p.id] for p in preds)
    assert agreed["image"] == f"PNEUMONIA/{preds[0].id}.jpeg"
    assert corrected["image"] == f"NORMAL/{preds[1].id}.jpeg"  # the reader's label wins
    assert corrected["agreement"] == "disagree" and corrected["model_label"] == "Pneumonia"
    assert missed["image"] == f"PNEUMONIA/{preds[2].id}.jpeg" and missed["model_version"] == "v2"
    assert unreadable["image"] == "" and unreadable["image_status"] == "not_assessable"
    assert expired["image"] == "" and expired["image_status"] == "expired"
    assert agreed["reader"] == "dr.0" and agreed["note"] == "note 0"
    assert agreed["read_at"].endswith("Z") and float(agreed["probability"]) == 0.8
    assert (out / agreed["image"]).read_bytes() == jpeg_bytes(0)
    assert "Smith" not in (out / "verdicts.csv").read_text()  # file names never leave

    split = data.list_images(out)  # what training reads: the reader's labels
    assert sorted(zip(map(str, split.paths), split.labels, strict=True)) == sorted(
        [
            (str(out / agreed["image"]), 1),
            (str(out / corrected["image"]), 0),
            (str(out / missed["image"]), 1),
        ]
    )

    # a re-read moves the image to its new class; --disagreements-only keeps only those
    store.record(decide(preds[1], "agree", "dr.9"))
    again = run_export(redis_url, tmp_path / "only", "--disagreements-only")
    assert "1 verdicts (1 disagreements)" in again.stdout
    run_export(redis_url, out)
    assert not (out / "NORMAL" / f"{preds[1].id}.jpeg").exists()
    assert (out / "PNEUMONIA" / f"{preds[1].id}.jpeg").exists()


def test_export_without_redis_says_what_to_check(tmp_path):
    done = run_export("redis://127.0.0.1:9/0", tmp_path / "x")
    assert done.returncode == 1 and "is Redis up?" in done.stderr
