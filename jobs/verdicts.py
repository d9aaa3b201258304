"""The reader's verdict: a clinician's own read of a result, kept beside the prediction.

A verdict is part of the job data (it lives and expires with the prediction it reads) so that
the API can show it with the result, the worklist can tell read from unread, ML engineers can
export production disagreements as labelled images (``python -m model.feedback export``), and
Prometheus can follow agreement between readers and each model version. One verdict per
prediction: recording again replaces it (the audit log in the UI keeps every change).

Counts per model version and agreement are kept in one hash (:attr:`Keys.verdict_tally`),
adjusted in the same transaction as the verdict itself, so a scrape reads them in one call
instead of walking every verdict.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields

import redis

from jobs.keys import DEFAULT_PREFIX, Keys
from jobs.record import LABELS, JobStatus, Prediction, now_ms, text


class Choice(enum.StrEnum):
    """What the reader says: the model is right, or their own label."""

    AGREE = "agree"
    PNEUMONIA = "Pneumonia"
    NORMAL = "Normal"
    NOT_ASSESSABLE = "not_assessable"


CHOICES = tuple(c.value for c in Choice)


class Agreement(enum.StrEnum):
    """How the reader's label compares with the model's (what the metric counts)."""

    AGREE = "agree"
    DISAGREE = "disagree"
    NOT_ASSESSABLE = "not_assessable"  # the reader could not read the image
    UNLABELLED = "unlabelled"  # the model gave no label to compare with


AGREEMENTS = tuple(a.value for a in Agreement)
NOTE_MAX = 500


class VerdictError(ValueError):
    """A verdict that cannot be recorded; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Verdict:
    """One reader's read of one prediction, with the model's answer it was compared with."""

    prediction_id: str
    choice: str
    reader_label: str  # Pneumonia | Normal | not_assessable
    agreement: str
    reader: str
    at: int
    note: str = ""
    model_label: str = ""
    model_version: str = ""
    probability: float | None = None
    threshold: float | None = None

    def to_redis(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_redis(cls, data: dict) -> Verdict:
        raw = {text(k): text(v) for k, v in data.items()}
        known = {f.name for f in fields(cls)}
        kwargs: dict = {k: v for k, v in raw.items() if k in known}
        kwargs["at"] = int(kwargs.get("at", 0))
        for name in ("probability", "threshold"):
            if name in kwargs:
                kwargs[name] = float(kwargs[name])
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return asdict(self)


def decide(prediction: Prediction, choice: str, reader: str, note: str = "") -> Verdict:
    """The verdict ``reader`` gives ``prediction``; VerdictError says why it cannot be given."""
    if choice not in CHOICES:
        raise VerdictError(
            "invalid_verdict", f"'choice' must be one of {', '.join(CHOICES)} (got {choice!r})."
        )
    if prediction.status in (JobStatus.QUEUED.value, JobStatus.PROCESSING.value):
        raise VerdictError("not_final", "The model has not read this image yet: wait for it.")
    if prediction.status == JobStatus.FAILED.value:
        raise VerdictError(
            "not_final", "This analysis failed: upload the image again before recording a read."
        )
    model_label = prediction.label if prediction.label in LABELS else ""
    if choice == Choice.AGREE and not model_label:
        raise VerdictError(
            "invalid_verdict", "The model gave no label to agree with: choose a label instead."
        )
    reader_label = model_label if choice == Choice.AGREE else choice
    if reader_label == Choice.NOT_ASSESSABLE:
        agreement = Agreement.NOT_ASSESSABLE
    elif not model_label:
        agreement = Agreement.UNLABELLED
    else:
        agreement = Agreement.AGREE if reader_label == model_label else Agreement.DISAGREE
    return Verdict(
        prediction_id=prediction.id,
        choice=choice,
        reader_label=reader_label,
        agreement=agreement.value,
        reader=reader,
        at=now_ms(),
        note=" ".join((note or "").split())[:NOTE_MAX],
        model_label=model_label,
        model_version=prediction.model_version or "",
        probability=prediction.probability,
        threshold=prediction.threshold,
    )


def _bucket(verdict: Verdict) -> str:
    return f"{verdict.model_version or '-'}|{verdict.agreement}"


class VerdictStore:
    """Record and read verdicts; keeps the per-version agreement counts in step."""

    def __init__(
        self, client: redis.Redis, prefix: str = DEFAULT_PREFIX, retention: int = 30 * 24 * 3600
    ):
        self.r = client
        self.keys = Keys(prefix)
        self.retention = retention

    def record(self, verdict: Verdict) -> Verdict:
        """Store (or replace) the verdict, its index entry and the counts, atomically."""
        key = self.keys.verdict(verdict.prediction_id)

        def write(pipe: redis.client.Pipeline) -> None:
            old = pipe.hgetall(key)
            pipe.multi()
            if old:
                pipe.hincrby(self.keys.verdict_tally, _bucket(Verdict.from_redis(old)), -1)
            pipe.delete(key)
            pipe.hset(key, mapping=verdict.to_redis())
            pipe.expire(key, self.retention)
            pipe.hincrby(self.keys.verdict_tally, _bucket(verdict), 1)
            pipe.zadd(self.keys.verdicts, {verdict.prediction_id: verdict.at})
            pipe.zremrangebyscore(self.keys.verdicts, "-inf", now_ms() - self.retention * 1000)

        self.r.transaction(write, key)
        return verdict

    def get(self, pid: str) -> Verdict | None:
        data = self.r.hgetall(self.keys.verdict(pid))
        return Verdict.from_redis(data) if data else None

    def many(self, pids: list[str]) -> dict[str, Verdict]:
        """The verdicts of these predictions (those that have one), in one round trip."""
        if not pids:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for pid in pids:
            pipe.hgetall(self.keys.verdict(pid))
        return {
            pid: Verdict.from_redis(d) for pid, d in zip(pids, pipe.execute(), strict=True) if d
        }

    def recent(self, since: int | None = None, limit: int = 10_000) -> list[Verdict]:
        """Verdicts newest first, recorded at or after ``since`` (ms) when given."""
        low = since if since is not None else "-inf"
        ids = [text(i) for i in self.r.zrevrangebyscore(self.keys.verdicts, "+inf", low, 0, limit)]
        found = self.many(ids)
        return [found[pid] for pid in ids if pid in found]

    def tally(self) -> dict[tuple[str, str], int]:
        """``{(model_version, agreement): count}`` over every verdict kept."""
        out = {}
        for bucket, count in self.r.hgetall(self.keys.verdict_tally).items():
            version, _, agreement = text(bucket).rpartition("|")
            out[(version, agreement)] = int(count)
        return out
