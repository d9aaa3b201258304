"""Compiling a published Keras model for fast serving: ``python -m model.serving.export``.

Two artefacts, made once per model version and cached (see :mod:`model.serving.predictor`):

- ``model.onnx``: the Keras model in inference mode exported with tf2onnx, batch dimension
  dynamic; numerically the same network in fp32.
- ``model.int8.onnx``: that graph statically quantised by ``onnxruntime.quantization``: int8
  weights per output channel, uint8 activations whose ranges are calibrated on real training
  X-rays, in QDQ form (QuantizeLinear/DequantizeLinear pairs). onnxruntime fuses the pairs
  into integer kernels; OpenVINO reads the same file as FakeQuantize and runs int8 too.

It runs in a child process of the worker (``compile_in_subprocess``) so TensorFlow is imported
only there: the serving process then holds just the runtime, and one export's memory is
returned to the system when it ends.

Calibration images are never validation or test images: either the ``calibration.npz`` a
publisher ships in the version directory, or the training split of the data the card names
(rebuilt with :func:`model.training.data.training_splits` and the card's seed and fractions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("model.serving.export")  # also when run as __main__

INPUT_NAME = "xray"
CALIBRATION_FILE = "calibration.npz"
CALIBRATION_IMAGES = 64
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "chest_xray_224"


def export_onnx(model_path: Path, out: Path, size: int) -> Path:
    """Keras ``model.keras`` -> ONNX with a dynamic batch dimension (tf2onnx, opset default)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    import tf2onnx

    model = keras.saving.load_model(model_path, compile=False)
    spec = tf.TensorSpec((None, size, size, 3), tf.float32, name=INPUT_NAME)
    # training=False explicitly: the model carries its augmentation layers, which must be
    # traced away (keras.Model.export leaves their random ops in the graph).
    serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    with contextlib.suppress(ImportError):  # tf2onnx 1.17 still spells np.object etc.
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()
    tmp = out.with_suffix(".tmp")
    tf2onnx.convert.from_function(serve, input_signature=[spec], output_path=str(tmp))
    _fold_captured_constants(tmp, serve.get_concrete_function())
    os.replace(tmp, out)
    return out


def _fold_captured_constants(onnx_path: Path, concrete) -> None:
    """Turn the constants a traced model captured into initializers, leaving one input.

    tf2onnx freezes captured *variables* but makes captured plain tensors graph inputs: the
    pretrained model's ImageNet centring (a Normalization layer whose mean and variance are
    tensors) came out as two extra inputs that nobody feeds, so onnxruntime refused the file
    and int8 calibration failed. Their values are known here: fold them in.
    """
    import onnx
    from onnx import numpy_helper

    values = {
        placeholder.name: value.numpy()
        for value, placeholder in zip(
            concrete.captured_inputs, concrete.graph.internal_captures, strict=True
        )
        if value.dtype.name != "resource"
    }
    model = onnx.load(str(onnx_path))
    extra = [i for i in model.graph.input if i.name != INPUT_NAME]
    missing = [i.name for i in extra if i.name not in values]
    if missing:
        raise RuntimeError(f"the exported graph needs inputs nobody can feed: {missing}")
    for graph_input in extra:
        model.graph.input.remove(graph_input)
        model.graph.initializer.append(
            numpy_helper.from_array(values[graph_input.name], graph_input.name)
        )
    if extra:
        onnx.save(model, str(onnx_path))


def calibration_images(model_dir: Path, size: int, data: str | None, n: int) -> np.ndarray:
    """Up to ``n`` training X-rays as (n, size, size, 3) float32 0..255; empty if none found."""
    shipped = model_dir / CALIBRATION_FILE
    if shipped.is_file():
        images = np.load(shipped)["images"][:n].astype(np.float32)
        if images.ndim == 3:
            images = np.repeat(images[..., None], 3, axis=3)
        if images.shape[1:3] == (size, size):
            return images
        log.warning(
            "%s holds %s images, the model takes %d px: ignored", shipped, images.shape, size
        )
    paths = _training_paths(model_dir, data)
    if not paths:
        return np.zeros((0, size, size, 3), np.float32)
    from model import preprocess

    return np.stack([preprocess.prepare(Path(p).read_bytes(), size) for p in paths[:n]])


def _training_paths(model_dir: Path, data: str | None) -> list[str]:
    """Training-split image paths, shuffled with a fixed seed (never val/test images)."""
    root = Path(data) if data else SHARED_DATA
    if not root.is_dir():
        return []
    from model.training import data as model_data

    card = json.loads((model_dir / "model_card.json").read_text())
    splits = model_data.splits_from_card(model_data.resolve_root(root), card)
    return _shuffled(splits["train"].paths)


def _shuffled(paths: list[str]) -> list[str]:
    """A fixed-seed shuffle: calibration is reproducible and spread over both classes."""
    return [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]


def quantize_int8(onnx_path: Path, out: Path, images: np.ndarray, batch: int = 4) -> Path:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(images[i : i + batch] for i in range(0, len(images), batch))

        def get_next(self):
            chunk = next(self.batches, None)
            return None if chunk is None else {INPUT_NAME: chunk}

    # Ranges are folded in every few batches: ResNet50's activations at 224 px would otherwise
    # be held for every calibration image at once (gigabytes). onnxruntime fails ("No data is
    # collected") when the batch count is a multiple of that interval, so avoid one.
    n_batches = -(-len(images) // batch)
    every = next(k for k in (3, 4, 5, 7, 11) if n_batches % k)
    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
    tmp = out.with_suffix(".tmp")
    quantize_static(
        str(pre),
        str(tmp),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=head_nodes(pre),
        extra_options={"CalibMaxIntermediateOutputs": every},
    )
    pre.unlink(missing_ok=True)
    os.replace(tmp, out)
    return out


def head_nodes(onnx_path: Path) -> list[str]:
    """The nodes from global pooling on: the classifier head, left in fp32.

    It costs nothing next to the convolutions, and quantising it would also quantise the
    output probability to steps of 1/255 (ties that blunt the ROC AUC and the threshold).
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    tainted, names = set(), []
    for node in graph.node:  # ONNX graphs are stored topologically sorted
        if node.op_type in ("GlobalAveragePool", "ReduceMean") or tainted & set(node.input):
            tainted.update(node.output)
            names.append(node.name)
    return names


def compile_in_subprocess(model_dir: Path, out_dir: Path, size: int, int8: bool, data: str | None):
    """Run this module's CLI in a child process; raises CalledProcessError on failure."""
    argv = [
        sys.executable,
        "-m",
        "model.serving.export",
        str(model_dir),
        str(out_dir),
        "--size",
        str(size),
    ]
    if int8:
        argv.append("--int8")
    if data:
        argv += ["--data", data]
    subprocess.run(argv, check=True, timeout=3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a store version directory")
    parser.add_argument("out_dir", type=Path, help="where model.onnx (and model.int8.onnx) go")
    parser.add_argument("--size", type=int, required=True, help="input size from the card")
    parser.add_argument("--int8", action="store_true", help="also write model.int8.onnx")
    parser.add_argument("--data", help="X-rays to calibrate on (default: the shared train set)")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = args.out_dir / "model.onnx"
    if not fp32.is_file():
        export_onnx(args.model_dir / "model.keras", fp32, args.size)
        log.info("exported %s", fp32)
    if args.int8 and not (args.out_dir / "model.int8.onnx").is_file():
        images = calibration_images(args.model_dir, args.size, args.data, args.calibration_images)
        if not len(images):
            sys.exit("no calibration images: ship calibration.npz with the model or pass --data")
        quantize_int8(fp32, args.out_dir / "model.int8.onnx", images)
        log.info("quantised to int8 on %d training images", len(images))


if __name__ == "__main__":
    main()
