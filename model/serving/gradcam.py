"""Grad-CAM: which parts of an X-ray drove a model's pneumonia score, as a PNG overlay.

Computed from the fp32 Keras model (``model.keras``) of the version that scored the image,
whatever runtime serves it (OpenVINO/onnx graphs carry no gradients), on the pixels
:func:`model.preprocess.prepare` makes, so the map explains exactly the input the model saw.

Decisions, and why:
- The explained layer is the deepest convolutional activation whose grid is at least
  :data:`MIN_GRID` cells on a side, searched inside nested models too (ResNet50 is a sub-model
  of the classifier). At 224 px that is ResNet50's last block (7 x 7), the classic Grad-CAM
  choice; a model trained at 32 px shrinks its last block to 1 x 1, which would paint one flat
  colour, so the map comes from the deepest block that still has a grid (8 x 8).
- The gradient is that of the score's logit (the sigmoid's input) with respect to that
  activation: a confident model's probability saturates at 1.0 and its gradient vanishes.
  Weights are the gradients averaged over the grid (Selvaraju et al. 2017), and only
  positive evidence for pneumonia is kept (ReLU). A map that is zero everywhere stays
  zero: it is not stretched to fake a hotspot.
- The PNG is an RGBA layer the size of the upload (longest side at most ``max_side``): the
  colour says how strongly a region drove the score and the alpha fades weak regions out, so a
  viewer can stack it on the X-ray and choose the opacity. The model sees the whole image
  squashed to a square (model.preprocess), so the square map is stretched back the same way.

What it is *not*: a map of where disease is. It shows what drove the score, which may be a
marker, a tube or the image border; the UI says so beside it.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

MIN_GRID = 7  # cells per side of the explained activation, when the model has such a layer


def _spatial(layer) -> int:
    """Side of a layer's 4-D output grid, 0 for anything else."""
    shape = getattr(layer, "output", None)
    shape = getattr(shape, "shape", None)
    if shape is None or len(shape) != 4 or shape[1] is None:
        return 0
    return int(shape[1])


def _target(model):
    """(top-level layer index, nested model or None, layer): the activation to explain."""
    import keras

    candidates = []  # in graph order
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.Model) and _spatial(layer):
            candidates += [(i, layer, inner) for inner in layer.layers if _spatial(inner)]
        elif _spatial(layer) and not isinstance(layer, keras.layers.InputLayer):
            candidates.append((i, None, layer))
    candidates = [c for c in candidates if not isinstance(c[2], keras.layers.InputLayer)]
    if not candidates:
        raise ValueError("the model has no convolutional layer to explain")
    gridded = [c for c in candidates if _spatial(c[2]) >= MIN_GRID]
    return (gridded or candidates)[-1]


class GradCam:
    """Grad-CAM for one loaded Keras classifier whose top level is a chain of layers.

    The classifier is run layer by layer; the layer holding the target activation (itself or
    the nested model around it) is replaced by a two-output model (activation, output), so
    one forward pass under a gradient tape gives both.
    """

    def __init__(self, model):
        import keras

        self.model = model
        index, nested, layer = _target(model)
        self.layer_name = layer.name
        self.grid = _spatial(layer)
        self._index = index
        if nested is not None:
            self._split = keras.Model(nested.inputs, [layer.output, nested.output])
        else:
            self._split = None
        self._fn = None

    @classmethod
    def load(cls, model_path) -> GradCam:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        return cls(keras.saving.load_model(model_path, compile=False))

    def compute(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        """(map in 0..1 of shape (grid, grid), score) for one (size, size, 3) input.

        The score is the logit where the model ends in a sigmoid Dense, else its output.
        """
        import tensorflow as tf

        if self._fn is None:  # traced once: eager, layer by layer, is ~10x slower
            self._fn = tf.function(self._forward)
        act, grads, score = self._fn(tf.convert_to_tensor(pixels[None].astype(np.float32)))
        weights = tf.reduce_mean(grads[0], axis=(0, 1))
        cam = tf.nn.relu(tf.reduce_sum(act[0] * weights, axis=-1)).numpy()
        peak = float(cam.max())
        cam = cam / peak if peak > 1e-12 else np.zeros_like(cam)
        return cam.astype(np.float32), float(score.numpy()[0])

    def _forward(self, x):
        """One pass under a tape: (activation, its gradient, score)."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            h, act = x, None
            last = len(self.model.layers) - 1
            for i, layer in enumerate(self.model.layers[1:], start=1):
                if i == last and _is_sigmoid_dense(layer):
                    h = tf.matmul(h, layer.kernel) + (layer.bias if layer.use_bias else 0.0)
                elif i == self._index:
                    if self._split is not None:
                        act, h = self._split(h, training=False)
                    else:
                        h = act = layer(h, training=False)
                    tape.watch(act)
                else:
                    h = layer(h, training=False)
            score = h[:, 0]
        return act, tape.gradient(score, act), score


def _is_sigmoid_dense(layer) -> bool:
    """The classifier's last Dense with a sigmoid: explained through its logit instead."""
    import keras

    return (
        isinstance(layer, keras.layers.Dense)
        and getattr(layer.activation, "__name__", "") == "sigmoid"
    )


def _palette() -> np.ndarray:
    """256 RGBA entries: blue -> cyan -> yellow -> red, weak values fading to transparent."""
    v = np.linspace(0.0, 1.0, 256)
    stops = np.array([0.0, 0.35, 0.65, 1.0])
    colours = np.array([[40, 60, 220], [0, 200, 220], [250, 220, 0], [230, 20, 20]], float)
    rgb = np.stack([np.interp(v, stops, colours[:, c]) for c in range(3)], axis=-1)
    alpha = np.clip(v * 1.4, 0, 1) * 230  # the strongest evidence stays almost opaque
    return np.column_stack([rgb, alpha]).round().astype(np.uint8)


PALETTE = _palette()


def render(cam: np.ndarray, width: int, height: int, max_side: int = 1024) -> bytes:
    """The map as an RGBA PNG of the upload's aspect ratio (longest side at most max_side)."""
    scale = min(1.0, max_side / max(width, height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    grid = Image.fromarray((np.clip(cam, 0, 1) * 255).round().astype(np.uint8))
    levels = np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC))
    out = io.BytesIO()
    Image.fromarray(PALETTE[levels]).save(out, "PNG", compress_level=6)
    return out.getvalue()
