"""Inference throughput of the production model, side by side: ``python -m bench.inference``.

In one run, on this CPU: (a) the template's way, one ``model.predict`` per image; (b) the
worker's batched path (``model.serving.predictor.load_predictor``, exactly what the worker serves)
for every backend at batch 1, 8, 16, 32 and 64; (c) the fp32 matmul rate of the machine, to
express each result as a fraction of the fp32 roofline (matmul GFLOP/s / model GFLOP).

The machine is shared, so every configuration is measured in ``--rounds`` interleaved
rounds and the median is reported, with the load average at the start and the end, and the
CPU seconds each image cost this process (less sensitive to other people's load than
wall-clock rates). Results: a table on stdout and var/bench/inference.json.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import numpy as np

from bench import common
from model.serving.predictor import BACKENDS, DEFAULT_BACKEND, host_threads, load_predictor


def measure(fn, batch: np.ndarray, seconds: float, warm_up: bool, min_calls: int = 1) -> dict:
    """Images per second of ``fn(batch)`` over at least ``seconds`` and ``min_calls`` calls."""
    if warm_up:
        fn(batch)  # first-call allocation, tracing (round 1 only)
    calls, t0, c0 = 0, time.perf_counter(), common.cpu_seconds()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        fn(batch)
        calls += 1
    wall, cpu = time.perf_counter() - t0, common.cpu_seconds() - c0
    n = calls * len(batch)
    return {"img_s": n / wall, "ms_per_batch": 1000 * wall / calls, "cpu_s_per_img": cpu / n}


def template_fn(model):
    """The template: one ``model.predict`` per image, as its request handler did."""
    return lambda batch: [model.predict(img[None], verbose=0) for img in batch]


def run(args) -> dict:
    import keras

    m = common.machine()
    print(f"machine: {common.describe(m)}", flush=True)
    load_start = common.loadavg()
    _, version_dir = common.production_store(args.size)
    model = keras.saving.load_model(version_dir / "model.keras", compile=False)
    gflop = common.model_gflop(model)
    images = common.real_xrays(args.size, 64)
    threads = host_threads()
    predictors = {}
    for backend in args.backends:
        t0 = time.perf_counter()
        # keras: max_batch=1 means no padding, so batch b costs what b images cost.
        p = load_predictor(
            version_dir, backend, max_batch=1, threads=threads, cache_dir=common.MODEL_CACHE
        )
        predictors[backend] = p
        print(f"loaded {backend} as {p.backend} in {time.perf_counter() - t0:.0f}s", flush=True)

    configs = [("template model.predict", 1, template_fn(model))]
    configs += [(b, n, predictors[b].predict) for b in args.backends for n in args.batches]
    samples: dict[tuple, list[dict]] = {(name, n): [] for name, n, _ in configs}
    gemm = []
    for r in range(args.rounds):
        gemm.append(common.matmul_gflops())
        for name, n, fn in configs:
            batch = np.resize(images, (n, *images.shape[1:]))
            res = measure(fn, batch, args.seconds, warm_up=r == 0)
            res["load"] = common.loadavg()
            samples[(name, n)].append(res)
            print(
                f"round {r + 1} {name:24s} batch {n:3d}: {res['img_s']:6.2f} img/s  "
                f"load {res['load']}",
                file=sys.stderr,
                flush=True,
            )
    gflops = statistics.median(g["best"] for g in gemm)
    per_cpu = statistics.median(g["per_cpu_s"] for g in gemm)
    roofline = gflops / gflop
    first = samples[configs[0][:2]]
    template = statistics.median(s["img_s"] for s in first)
    template_cpu = statistics.median(s["cpu_s_per_img"] for s in first)
    rows = []
    for (name, n), runs in samples.items():
        img_s = statistics.median(s["img_s"] for s in runs)
        cpu = statistics.median(s["cpu_s_per_img"] for s in runs)
        rows.append(
            {
                "path": name,
                "batch": n,
                "img_s": img_s,
                "ms_per_batch": statistics.median(s["ms_per_batch"] for s in runs),
                "cpu_s_per_img": cpu,
                "idle_img_s": threads / cpu,
                "x_template": img_s / template,
                "x_template_cpu": template_cpu / cpu,
                "x_fp32_roofline": img_s / roofline,
                "x_fp32_roofline_cpu": gflop / cpu / per_cpu,
                "rounds": runs,
            }
        )
    return {
        "machine": m,
        "threads": threads,
        "size": args.size,
        "model_gflop_per_img": gflop,
        "matmul_gflops": gflops,
        "matmul_gflops_per_cpu_s": per_cpu,
        "matmul_rounds": gemm,
        "fp32_roofline_img_s": roofline,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "default_backend": DEFAULT_BACKEND,
        "load_start": load_start,
        "load_end": common.loadavg(),
        "results": rows,
    }


def report(res: dict) -> str:
    cores = res["threads"]
    head = (
        f"ResNet50 at {res['size']} px: {res['model_gflop_per_img']:.2f} GFLOP/img. fp32 matmul: "
        f"{res['matmul_gflops']:.0f} GFLOP/s best wall-clock (rounds: "
        + ", ".join(f"{g['best']:.0f}" for g in res["matmul_rounds"])
        + f"), {res['matmul_gflops_per_cpu_s']:.0f} GFLOP per CPU-second "
        f"(x{cores} cores = {cores * res['matmul_gflops_per_cpu_s']:.0f} GFLOP/s idle)\n"
        f"fp32 roofline: {res['fp32_roofline_img_s']:.1f} img/s wall-clock; "
        f"{cores * res['matmul_gflops_per_cpu_s'] / res['model_gflop_per_img']:.1f} img/s idle\n"
        f"{cores} threads; median of {res['rounds']} interleaved rounds; load average "
        f"(1/5/15 min) {res['load_start']} at start, {res['load_end']} at end\n"
        "idle img/s = cores / CPU s per image; the *cpu ratios use CPU time on both sides, "
        "so other people's load cancels out\n"
    )
    rows = [
        [
            r["path"],
            r["batch"],
            r["img_s"],
            1000 * r["cpu_s_per_img"],
            r["idle_img_s"],
            r["x_template"],
            r["x_template_cpu"],
            r["x_fp32_roofline"],
            r["x_fp32_roofline_cpu"],
        ]
        for r in res["results"]
    ]
    headers = [
        "path",
        "batch",
        "img/s",
        "CPU ms/img",
        "idle img/s",
        "x template",
        "x template cpu",
        "x roofline",
        "x roofline cpu",
    ]
    best = max(res["results"][1:], key=lambda r: r["idle_img_s"])
    foot = (
        f"\nbest (by CPU cost): {best['path']} at batch {best['batch']}: "
        f"{best['x_template_cpu']:.1f}x the template, {best['x_fp32_roofline_cpu']:.2f}x the "
        f"fp32 roofline by CPU time ({best['x_template']:.1f}x, {best['x_fp32_roofline']:.2f}x "
        f"wall-clock). Targets: >= 4x, >= 1.0x. Worker default backend: {res['default_backend']}"
    )
    return head + common.table(headers, rows) + foot


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=common.SIZE)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.5, help="per configuration and round")
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    res = run(args)
    common.finish("inference", res, report(res))


if __name__ == "__main__":
    main()
