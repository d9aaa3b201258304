"""Write RELIABILITY.md from scratch from the last reliability run (``results.json``).

The reliability suite runs this at the end of every session (tests/reliability/conftest.py);
by hand: ``.venv/bin/python -m tests.reliability.report``. Nothing is carried over from an
earlier run: every row is a proof that ran this time, with its outcome.
"""

from __future__ import annotations

import json
import sys

from devstack.settings import ROOT

from .results import RESULTS

HEADER = """# Reliability and security proof

What the reliability suite (`tests/reliability/`, marker `reliability`, part of `make test`)
proved in its **last run**; the file is rewritten from scratch at the end of every run, so a
proof that did not run is not listed and a failed one says so. Every proof runs real
processes: redis-server (AOF, fsync on every write), the API under gunicorn, inference worker
processes, nginx and the UI where stated.

- commit: `{commit}`
- date (UTC): {date}
- CPU: {cpu}
- proofs: {passed} passed, {failed} failed, {skipped} skipped
- accepted jobs lost, summed over the passed proofs that count them: **{lost}**

| proof | result | what was done | figures | test |
|---|---|---|---|---|
"""

WHAT = {
    "load": "uploads from concurrent clients, each waited to `done`",
    "fault: redis": "Redis SIGKILLed during a stream of uploads, restarted on the same AOF; "
    "API and worker not restarted",
    "fault: SIGKILL of a gunicorn": "one gunicorn worker SIGKILLed during concurrent uploads",
    "fault: SIGKILL of an inference": "worker SIGKILLed mid-batch, a second worker reclaims",
    "fault: poison": "stored image corrupted after acceptance: failed at once (decoding is"
    ' deterministic) with "export it again", dead letter; the worker keeps serving',
    "fault: worker with": "worker started without a usable model: /readyz says why, jobs wait, "
    "complete once a model is published",
    "fault: a job that kills": "the worker process is SIGKILLed whenever one job is in hand (a "
    "decoder crash) and restarted: that job alone fails, its batch-mates finish",
    "fault: queue past": "uploads past QUEUE_LIMIT with no worker: the excess refused with 503 "
    "and Retry-After, everything accepted done once a worker starts",
    "fuzz": "hypothesis: mutated and random PNG/JPEG/DICOM bytes through upload validation,"
    " then what was accepted through the worker's decoding",
    "bomb": "decompression bomb refused from its header: peak memory of the process, reset "
    "before the upload, does not grow",
    "hostile: slow": "headers dribbled one line a second over TLS: nginx drops the client "
    "(client_header_timeout 15 s) and keeps serving",
    "security: API": "every /v1 route and method without a token, with a wrong one and with "
    "another scheme: 401",
    "security: DICOM": "DICOM with patient name, ID, birth date and institution through the "
    "real API and worker; Redis memory, AOF on disk and every log searched",
    "security: UI": "every UI route and method through nginx without a session: login or "
    "refusal, never the page",
    "security: sessions": "through nginx: the pre-login CSRF token dies at login, a copied "
    "cookie dies at logout",
    "privacy": "X-rays named like a patient with a patient in PNG text/EXIF, JPEG EXIF/XMP/"
    "IPTC/ICC/comment and trailing bytes, through nginx, UI, API, worker: no trace in any URL, "
    "log, Redis key or value, AOF or served image (pixels unchanged)",
}


def describe(name: str) -> str:
    return next((v for k, v in WHAT.items() if name.startswith(k)), "")


def fmt(figures: dict) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


def render(data: dict) -> str:
    proofs = sorted(data["proofs"], key=lambda p: (p["proof"], p["test"]))
    count = {k: sum(p["outcome"] == k for p in proofs) for k in ("passed", "failed", "skipped")}
    lost = sum(int(p["figures"].get("lost", 0)) for p in proofs if p["outcome"] == "passed")
    rows = [
        f"| {p['proof']} | {p['outcome']} ({p['seconds']} s) | {describe(p['proof'])} | "
        f"{fmt(p['figures'])} | `{p['test'].removeprefix('tests/reliability/')}` |"
        for p in proofs
    ]
    head = HEADER.format(
        commit=data["commit"], date=data["date"], cpu=data["cpu"], lost=lost, **count
    )
    return head + "\n".join(rows) + "\n"


def main() -> int:
    if not RESULTS.exists():
        print(f"no results at {RESULTS}: run the reliability suite first", file=sys.stderr)
        return 1
    data = json.loads(RESULTS.read_text())
    (ROOT / "RELIABILITY.md").write_text(render(data))
    print(f"RELIABILITY.md written: {len(data['proofs'])} proofs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
