"""``python -m model.training.probe``: training throughput of the ResNet50 at a few input sizes.

Before choosing an input size for a time budget, measure: a few training steps per size on
random data, reported as images per wall-clock second *and* per CPU-second. On a shared
machine the wall-clock number moves with everybody else's load; the CPU-second number is
what the input size really costs.

    python -m model.training.probe --sizes 32,64,96 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def probe(size: int, batch_size: int, seconds: float) -> dict:
    """Train steps at one input size for about ``seconds``; returns the throughput."""
    import keras
    import tensorflow as tf

    from model.training.build import build_model

    model, _ = build_model(size, None, augment=0.5)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).integers(0, 255, (batch_size, size, size, 3)).astype("uint8")
    y = np.zeros((batch_size,), "float32")
    y[::2] = 1
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)  # trace once, not timed
    steps, wall0, cpu0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - wall0 < seconds:
        model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
        steps += 2
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    n = steps * batch_size
    return {"size": size, "images_per_second": n / wall, "images_per_cpu_second": n / cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m model.training.probe", description=__doc__.split("\n")[0]
    )
    p.add_argument("--sizes", default="32,64", help="comma-separated input sizes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load = os.getloadavg()[0]
    for size in (int(s) for s in args.sizes.split(",")):
        r = probe(size, args.batch_size, args.seconds)
        print(
            f"{size:4d} px  batch {args.batch_size}: {r['images_per_second']:6.1f} img/s wall, "
            f"{r['images_per_cpu_second']:6.1f} img per CPU-second  (load average {load:.1f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
