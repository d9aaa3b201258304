"""pneumonia-score: upload a folder of chest X-rays to the API and write every result to a CSV.

    source var/local.env     # API_URL and API_TOKEN (or pass --api-url / --token)
    pneumonia-score FOLDER [--out results.csv]

Every file under FOLDER (hidden ones aside) is uploaded; the API says which are not X-rays it
can read, and those are reported per file, never stopping the run. The CSV (file, status,
label, probability, threshold, model_version, error, id) grows as results arrive: after an
interruption, the same command resumes where it stopped, without uploading a file twice.
When FOLDER holds NORMAL/ and PNEUMONIA/, AUC, sensitivity and specificity are printed with
95 % bootstrap intervals.

Exit status: 0 every file has its answer (a refused file is an answer); 1 some could not be
scored now (API unreachable, no result in time): run again; 2 usage or token error; 130
interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from pneumonia_score import stats
from pneumonia_score.client import Refused, ScoringClient, Unauthorized, Unavailable
from pneumonia_score.journal import RETRY, WAITING, Journal
from pneumonia_score.settings import Settings

TRUTH = {"NORMAL": 0, "PNEUMONIA": 1}


def find_files(folder: Path, exclude: set[Path]) -> list[Path]:
    """Every regular, non-hidden file under ``folder``, in a stable order."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.resolve() not in exclude:
            out.append(path)
    return out


def truth_of(name: str) -> int | None:
    """1 for PNEUMONIA/..., 0 for NORMAL/..., None otherwise (by the first folder)."""
    first = name.split("/", 1)[0].upper() if "/" in name else ""
    return TRUTH.get(first)


class Run:
    """One scoring run over a list of files, recorded in a journal."""

    def __init__(self, client: ScoringClient, journal: Journal, settings: Settings, bar):
        self.client, self.journal, self.settings, self.bar = client, journal, settings, bar
        self.pending: dict[str, tuple[str, float]] = {}  # name -> (prediction id, since)
        self.last_poll = 0.0

    def score(self, files: list[tuple[str, Path]]) -> None:
        for name, path in files:
            if self.journal.final(name):
                self.bar.update(1)
            elif pid := self.journal.waiting_id(name):
                self.pending[name] = (pid, time.monotonic())
            else:
                self._upload(name, path)
            self._poll(force=False)
        while self.pending:
            time.sleep(self.settings.poll_seconds)
            self._poll(force=True)

    def _upload(self, name: str, path: Path) -> None:
        try:
            pid = self.client.upload(path)
        except Refused as exc:
            self._final(name, status="rejected", error=str(exc))
        except Unavailable as exc:
            self._final(name, status="error", error=str(exc))
        except OSError as exc:
            self._final(name, status="error", error=f"cannot read the file: {exc.strerror}")
        else:
            self.journal.write(name, status="queued", id=pid)
            self.pending[name] = (pid, time.monotonic())

    def _poll(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_poll < self.settings.poll_seconds:
            return
        self.last_poll = now
        for name, (pid, since) in list(self.pending.items()):
            try:
                record = self.client.result(pid)
            except Refused as exc:  # expired or unknown: upload it again next run
                self._final(name, status="error", error=str(exc))
                continue
            except Unavailable:
                record = {"status": "queued"}
            if record.get("status") not in WAITING:
                fields = ("status", "label", "probability", "threshold", "model_version", "error")
                self._final(name, id=pid, **{k: record.get(k) for k in fields})
            elif time.monotonic() - since > self.settings.wait_seconds:
                self._final(name, status="timeout", id=pid, error="no result yet: run again")

    def _final(self, name: str, **values) -> None:
        self.journal.write(name, **values)
        self.pending.pop(name, None)
        self.bar.update(1)


def report(journal: Journal, names: list[str], out: Path, seed: int) -> int:
    """Print the counts, the bad files and, for a labelled folder, the figures."""
    rows = [journal.rows[n] for n in names if n in journal.rows]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"{len(names)} files: {parts or 'nothing scored'} -> {out}")
    bad = [r for r in rows if r["status"] != "done"]
    if bad:
        print("files without a result:")
        for row in bad:
            print(f"  {row['file']}: {row['status']}: {row['error'] or '-'}")
    labelled = [
        r for r in rows if r["status"] == "done" and truth_of(r["file"]) is not None and r["label"]
    ]
    if labelled:
        truth = [truth_of(r["file"]) for r in labelled]
        score = [float(r["probability"]) for r in labelled]
        called = [1 if r["label"] == "Pneumonia" else 0 for r in labelled]
        s = stats.summary(truth, score, called, seed=seed)
        print(
            f"labelled images scored: {s['n_pneumonia']} PNEUMONIA, {s['n_normal']} NORMAL "
            "(95 % bootstrap intervals; sensitivity/specificity at the served threshold)"
        )
        for key in ("auc", "sensitivity", "specificity"):
            value, low, high = s[key]
            print(f"  {key:<12} {value:.3f}  [{low:.3f}, {high:.3f}]")
    left = sum(counts.get(s, 0) for s in (*WAITING, *RETRY)) + len(names) - len(rows)
    if left:
        print(f"{left} files have no answer yet: run the same command again to resume.")
    return 1 if left else 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pneumonia-score", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("folder", type=Path, help="folder of PNG/JPEG/DICOM files (recursive)")
    parser.add_argument("--out", type=Path, default=Path("pneumonia-scores.csv"),
                        help="the CSV to write and resume from; default %(default)s")  # fmt: skip
    parser.add_argument("--api-url", help="the API's base URL (default: $API_URL)")
    parser.add_argument("--token", help="the service token (default: $API_TOKEN)")
    parser.add_argument("--uploader", default="pneumonia-score",
                        help="who uploads, as the audit shows it; default %(default)s")  # fmt: skip
    parser.add_argument("--wait", type=float, help="seconds to wait for one result")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (a batch scheduler, ``kill``) end the run cleanly and resumable.

    Python translates SIGINT into KeyboardInterrupt only when the parent left it at its
    default: a run started in the background of a script inherits it *ignored* and could not
    be stopped but by SIGKILL, which skips writing the journal out.
    """

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def main(argv: list[str] | None = None) -> None:
    from tqdm import tqdm

    args = parse(argv)
    stop_on_signals()
    settings = Settings()
    settings.api_url = args.api_url or settings.api_url
    settings.api_token = args.token or settings.api_token
    settings.wait_seconds = args.wait if args.wait is not None else settings.wait_seconds
    if not args.folder.is_dir():
        sys.exit(f"pneumonia-score: {args.folder} is not a folder")
    if not settings.api_token:
        print("pneumonia-score: no token: set API_TOKEN (locally: source var/local.env) "
              "or pass --token", file=sys.stderr)  # fmt: skip
        sys.exit(2)
    out = args.out
    files = find_files(args.folder, {out.resolve(), out.with_name(out.name + ".tmp").resolve()})
    named = [(p.relative_to(args.folder).as_posix(), p) for p in files]
    journal = Journal(out)
    client = ScoringClient(settings.api_url, settings.api_token, settings.timeout,
                           settings.retries, args.uploader)  # fmt: skip
    code = 0
    with tqdm(total=len(named), unit="image", disable=args.quiet, file=sys.stderr) as bar:
        try:
            Run(client, journal, settings, bar).score(named)
        except Unauthorized as exc:
            print(f"pneumonia-score: the API refused the token: {exc}", file=sys.stderr)
            code = 2
        except KeyboardInterrupt:
            print("\ninterrupted: run the same command again to resume", file=sys.stderr)
            code = 130
    journal.compact()
    if code:
        sys.exit(code)
    sys.exit(report(journal, [n for n, _ in named], out, args.seed))
