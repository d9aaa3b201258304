"""What both benchmarks share: the machine's description and load, the production model with
random weights, the fp32 matmul ceiling, tables and JSON results under var/bench/.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from devstack.settings import ROOT, TRAIN_224
from model.card import checksums

OUT_DIR = ROOT / "var" / "bench"
SIZE = 224  # the production input size


def loadavg() -> str:
    """1, 5 and 15 minute load averages (this 2-core machine is shared: say how busy it was)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict:
    """CPU model, cores and the SIMD features that decide which precisions can go fast."""
    info = Path("/proc/cpuinfo").read_text()
    names = [ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln]
    model = names[0] if names else ""
    flags = set(next((ln for ln in info.splitlines() if ln.startswith("flags")), "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return {
        "cpu": model or platform.processor(),
        "cores": len(os.sched_getaffinity(0)),
        "simd": {f: f in flags for f in wanted},
        "python": platform.python_version(),
    }


def describe(m: dict) -> str:
    have = [f for f, ok in m["simd"].items() if ok]
    lack = [f for f, ok in m["simd"].items() if not ok]
    return f"{m['cpu']}, {m['cores']} cores; has {' '.join(have)}; lacks {' '.join(lack)}"


def cpu_seconds() -> float:
    """CPU time this process has used (all threads): other people's load barely moves it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def matmul_gflops(n: int = 2048, seconds: float = 2.0) -> dict:
    """fp32 GEMM rate (numpy's OpenBLAS, all cores): the machine's fp32 ceiling.

    ``best``: the best wall-clock rate of one product; ``per_cpu_s``: GFLOP per CPU-second
    over all of them (times the cores, the rate of an idle machine).
    """
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
    a @ b
    best, calls, c0, end = 0.0, 0, cpu_seconds(), time.perf_counter() + seconds
    while calls < 3 or time.perf_counter() < end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        calls += 1
    return {"best": best, "per_cpu_s": calls * 2 * n**3 / (cpu_seconds() - c0) / 1e9}


def build_production_model(size: int = SIZE):
    """The production architecture with random weights (speed does not depend on them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    from model.training.build import build_model

    return build_model(size, weights=None, augment=0)[0]


def model_gflop(model) -> float:
    """GFLOP per image of the convolutions and dense layers (2 FLOP per multiply-add)."""
    import keras

    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return total / 1e9


def _layers(model):
    for layer in model.layers:
        yield from _layers(layer) if hasattr(layer, "layers") else (layer,)


def save_version(model, out_dir: Path, version: str, size: int, calibration: np.ndarray) -> Path:
    """A store version directory (model.keras, card, calibration.npz) for the real loader."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.keras")
    card = {"version": version, "input_size": size, "threshold": 0.5, "weights": "random",
            "files": checksums(out_dir)}  # fmt: skip
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2))
    np.savez_compressed(out_dir / "calibration.npz", images=calibration[..., 0].astype(np.uint8))
    return out_dir


def real_xrays(size: int, n: int) -> np.ndarray:
    """``n`` real X-rays at ``size`` px through model.preprocess (random pixels if absent)."""
    from model import preprocess

    files = sorted(TRAIN_224.glob("*/*.jp*g"))[::37][:n]
    if len(files) < n:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, size, size, 3)).astype(np.float32)
    return np.stack([preprocess.prepare(f.read_bytes(), size) for f in files])


def table(headers: list[str], rows: list[list]) -> str:
    """A plain fixed-width table (also pasted into PERFORMANCE.md)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def finish(name: str, res: dict, text: str) -> None:
    """Print a bench's table and keep it, with every sample, in var/bench/<name>.json."""
    print(text)
    res["table"] = text
    print(f"\nwrote {write_json(name, res)}")


def write_json(name: str, payload: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def production_store(size: int = SIZE) -> tuple[Path, Path]:
    """(store root, version dir) of the random-weight production model under var/bench/.

    Built and saved once and then reused, so its ONNX/int8 exports (cached by the file's
    digest under var/bench/model-cache) are made once for every later bench run too.
    """
    from model.store import LocalStore

    version = f"bench-resnet50-{size}"
    store = LocalStore(OUT_DIR / "models")
    path = store.root / version
    if not (path / "calibration.npz").is_file():
        staging = save_version(
            build_production_model(size), OUT_DIR / "staging", version, size, real_xrays(size, 64)
        )
        store.publish(staging, version)
        (path / "calibration.npz").write_bytes((staging / "calibration.npz").read_bytes())
        shutil.rmtree(staging)
    store.set_current(version)
    return store.root, path


MODEL_CACHE = OUT_DIR / "model-cache"
