"""Where the dev stack finds the repository and the shared X-rays (``SHARED_DATA`` overrides)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data"))
FULLRES = SHARED_DATA / "chest_xray_fullres_sample"
TRAIN_224 = SHARED_DATA / "chest_xray_224" / "train"
# redis-server's memory cap (policy noeviction, as in production): writes refused when full.
REDIS_MAXMEMORY = os.environ.get("REDIS_MAXMEMORY", "1gb")
