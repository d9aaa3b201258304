"""Write RELIABILITY.md from the figures of the last reliability run.

.venv/bin/python -m pytest -m reliability && .venv/bin/python -m tests.reliability.report
"""

from __future__ import annotations

import json
import platform
import sys

from devstack.settings import ROOT

from .results import RESULTS

HEADER = """# Reliability and security proof

What `make test` proves about keeping every accepted X-ray and result, and about who can see
them. The figures below are those of the last run of the reliability suite
(`tests/reliability/`, marker `reliability`), written by `python -m tests.reliability.report`.
Every proof runs real processes: redis-server (AOF, fsync on every write), the API under
gunicorn, inference worker processes, nginx and the UI where stated.

**Accepted jobs lost across all proofs: {lost}.**

| proof | what was done | figures |
|---|---|---|
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
    "fuzz": "hypothesis: mutated and random PNG/JPEG/DICOM bytes through upload validation,"
    " then what was accepted through the worker's decoding",
    "bomb": "decompression bomb refused from its header, before any pixel is decoded",
    "hostile: slow": "headers dribbled one line a second over TLS: nginx drops the client "
    "(client_header_timeout 15 s) and keeps serving",
    "security: API": "every /v1 route and method called with a wrong token: 401",
    "security: DICOM": "DICOM with patient name, ID, birth date and institution through the "
    "real API and worker; Redis memory, AOF on disk and every log searched",
    "security: UI": "every UI route and method through nginx without a session: login or "
    "refusal, never the page",
}


def describe(name: str) -> str:
    return next((v for k, v in WHAT.items() if name.startswith(k) and v), "")


def fmt(figures: dict) -> str:
    parts = []
    for key, value in figures.items():
        if key == "at":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


def main() -> int:
    if not RESULTS.exists():
        print(f"no figures at {RESULTS}: run the reliability suite first", file=sys.stderr)
        return 1
    data = json.loads(RESULTS.read_text())
    lost = sum(int(f.get("lost", 0)) for f in data.values())
    rows = [f"| {name} | {describe(name)} | {fmt(fig)} |" for name, fig in sorted(data.items())]
    when = max(f["at"] for f in data.values())
    footer = (
        f"\n_Last run: {when} on {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, 2 cores shared with other work._\n"
    )
    extra = ROOT / "tests/reliability/RELIABILITY_NOTES.md"
    notes = "\n" + extra.read_text() if extra.exists() else ""
    (ROOT / "RELIABILITY.md").write_text(
        HEADER.format(lost=lost) + "\n".join(rows) + "\n" + footer + notes
    )
    print(f"RELIABILITY.md written: {len(rows)} proofs, {lost} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
