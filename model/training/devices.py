"""What accelerator a training run would use, said in words a person can act on.

The gpu recipe (224 px ResNet50 fine-tuning) on a CPU would take days and then publish a
model nobody meant to train, so it refuses to start without a GPU that TensorFlow can use.
The message names what was found: no driver (``nvidia-smi`` missing), a driver TensorFlow
cannot use (a CPU-only build such as ``tensorflow-cpu``), or a GPU that is simply absent.
"""

from __future__ import annotations

import shutil
import subprocess


class NoGPU(RuntimeError):
    """A recipe that needs a GPU found none that TensorFlow can use."""


def nvidia_smi() -> str:
    """The GPUs the NVIDIA driver reports, or why there is no answer."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not installed (no NVIDIA driver)"
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "nvidia-smi did not answer within 30 s"
    text = (done.stdout or done.stderr).strip().replace("\n", "; ")
    return text if done.returncode == 0 else f"nvidia-smi failed: {text}"


def tensorflow_gpus() -> tuple[list[str], str]:
    """(GPU device names TensorFlow sees, a description of the TensorFlow build)."""
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    build = f"CUDA {info.get('cuda_version')}" if info.get("is_cuda_build") else "a CPU-only build"
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return gpus, f"TensorFlow {tf.__version__} ({build})"


def require_gpu() -> str:
    """A one-line description of the GPU(s) to train on; raises :class:`NoGPU` otherwise."""
    gpus, tensorflow = tensorflow_gpus()
    driver = nvidia_smi()
    if gpus:
        return f"{driver} ({tensorflow}: {', '.join(gpus)})"
    raise NoGPU(
        f"the gpu recipe needs a GPU and TensorFlow sees none. Found: {driver}; {tensorflow} "
        "with no GPU device. Train on the GPU box (install requirements/gpu.lock there), "
        "use --recipe local-cpu, or pass --allow-cpu for a deliberate CPU run."
    )
