"""``python -m model.train``: the training CLI (the recipe itself is in :mod:`model.cnn`).

Kept as a thin entry point so ``make model``, scripts/up.sh and the GPU server all call the
same command; see ``python -m model.train --help`` and model/README.md.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from model.cnn import main

if __name__ == "__main__":
    sys.exit(main())
