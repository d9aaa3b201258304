"""The results CSV, which is also the run's journal: written as things happen, read to resume.

A row is appended (and flushed) when a file is uploaded (status ``queued`` with its id) and
again when its result is final, so an interrupted run loses nothing: the last row of a file
wins. On resume, files whose last row is final are kept, files with an id still waiting are
read again (never uploaded twice), and the rest are uploaded. At the end the file is rewritten
with one row per file, sorted.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

COLUMNS = ("file", "status", "label", "probability", "threshold", "model_version", "error", "id")
# Statuses after which a file needs nothing more (the API's final statuses and "rejected").
WAITING = ("queued", "processing", "timeout")
RETRY = ("error",)


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.exists():
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if row.get("file"):
                        self.rows[row["file"]] = {c: row.get(c) or "" for c in COLUMNS}
        self._fh = None

    def final(self, name: str) -> bool:
        row = self.rows.get(name)
        return bool(row) and row["status"] not in (*WAITING, *RETRY)

    def waiting_id(self, name: str) -> str:
        """The prediction id to read again, when the file was uploaded and is not final."""
        row = self.rows.get(name)
        return row["id"] if row and row["status"] in WAITING and row["id"] else ""

    def write(self, name: str, **values) -> None:
        """Record the file's new state now (append + flush)."""
        row = {c: "" for c in COLUMNS}
        row.update({k: "" if v is None else str(v) for k, v in values.items() if k in COLUMNS})
        row["file"] = name
        self.rows[name] = row
        if self._fh is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS)
            if new:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._fh.flush()

    def compact(self) -> None:
        """Rewrite the CSV with one row per file, sorted by file (atomically)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for name in sorted(self.rows):
                writer.writerow(self.rows[name])
        os.replace(tmp, self.path)
