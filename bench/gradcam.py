"""Cost of one Grad-CAM heatmap: ``python -m bench.gradcam [--sizes 32 224] [--rounds 5]``.

What the README's "on demand, not eagerly" decision rests on: for the production
architecture (model.training.build.build_model, random weights: the time does not depend on
them) at each input size, the median time of ``GradCam.compute`` after a warm-up (graph
traced), of rendering the PNG for a 2000 x 1600 upload, and of one fp32 Keras prediction for
comparison. The machine is shared: state the load beside the figures.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def measure(size: int, rounds: int) -> dict:
    from model.serving.gradcam import GradCam, render
    from model.training.build import build_model

    model, _ = build_model(size)
    cam = GradCam(model)
    x = np.random.default_rng(0).uniform(0, 255, (size, size, 3)).astype(np.float32)
    grid, _ = cam.compute(x)  # warm-up: traces the graph

    def median_ms(fn) -> float:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1000)

    return {
        "size": size,
        "layer": cam.layer_name,
        "grid": cam.grid,
        "gradcam_ms": median_ms(lambda: cam.compute(x)),
        "render_ms": median_ms(lambda: render(grid, 2000, 1600)),
        "predict_ms": median_ms(lambda: model.predict_on_batch(x[None])),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for size in args.sizes:
        r = measure(size, args.rounds)
        print(
            f"{r['size']:>4} px  layer {r['layer']} ({r['grid']}x{r['grid']})  "
            f"Grad-CAM {r['gradcam_ms']:.0f} ms  PNG {r['render_ms']:.0f} ms  "
            f"predict {r['predict_ms']:.0f} ms"
        )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
