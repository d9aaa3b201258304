"""Model: ResNet50 with the design's head, its own input scaling and augmentation.

Decisions, and why:
- Normalisation lives *inside* the model (first layers), so a ``model.keras`` file is
  self-describing and the worker only has to feed ``model.preprocess.prepare`` output
  (0..255). From scratch that is ``Rescaling`` to [-1, 1]; with ImageNet weights it is the
  caffe-style mean subtraction ResNet50's weights were learnt with (``Normalization`` with
  fixed statistics, so it serialises without a Lambda).
- Augmentation layers are in the model too: Keras runs them only when ``training=True``,
  so they cost nothing at inference and cannot leak into serving. Small rotations, shifts,
  zoom and contrast; no flips (a vertical flip is not a chest X-ray, and a horizontal one
  moves the heart to the wrong side).
- With pretrained weights the base is called with ``training=False``: its BatchNorm layers
  stay in inference mode even when some of its layers are unfrozen for fine-tuning
  (keras-io transfer learning guide). From scratch BatchNorm has to learn, so it trains.
"""

from __future__ import annotations

import keras

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.resnet50.preprocess_input


def augmentation(strength: float = 1.0) -> keras.Sequential:
    """Cheap on-the-fly augmentation that suits chest X-rays; ``strength=0`` turns it off."""
    s = strength
    return keras.Sequential(
        [
            keras.layers.RandomRotation(0.03 * s, fill_mode="constant"),  # about +-11 degrees
            keras.layers.RandomTranslation(0.06 * s, 0.06 * s, fill_mode="constant"),
            keras.layers.RandomZoom(0.1 * s, fill_mode="constant"),
            keras.layers.RandomContrast(0.2 * s),
        ],
        name="augmentation",
    )


def head(x, units: int = 256, blocks: int = 2, dropout: float = 0.3, l2: float = 1e-3):
    """GAP -> [Dense(256, L2) -> BatchNorm -> ReLU -> Dropout] x blocks -> Dense(1, sigmoid)."""
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    for i in range(blocks):
        x = keras.layers.Dense(
            units, use_bias=False, kernel_regularizer=keras.regularizers.L2(l2), name=f"fc{i}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"fc{i}_bn")(x)
        x = keras.layers.ReLU(name=f"fc{i}_relu")(x)
        x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    # float32 output even under mixed precision: a float16 sigmoid saturates near 0 and 1.
    return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="pneumonia")(x)


def build_model(
    size: int,
    weights: str | None = None,
    augment: float = 1.0,
    bn_momentum: float = 0.9,
) -> tuple[keras.Model, keras.Model]:
    """The classifier and its ResNet50 base (returned so training can (un)freeze it).

    ``weights``: ``None``/``"none"`` (from scratch), ``"imagenet"`` or a path to a
    ``.h5``/``.weights.h5`` file of ResNet50 (notop) weights, for offline machines.
    """
    pretrained = weights not in (None, "none")
    inputs = keras.Input((size, size, 3), name="xray")  # 0..255, from model.preprocess
    x = augmentation(augment)(inputs) if augment > 0 else inputs
    if pretrained:
        x = keras.layers.Normalization(
            mean=list(IMAGENET_BGR_MEAN), variance=[1.0, 1.0, 1.0], name="imagenet_centre"
        )(x)
    else:
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)
    base = keras.applications.ResNet50(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(size, size, 3),
    )
    if pretrained and weights != "imagenet":
        base.load_weights(weights)
    if not pretrained:
        # Keras' BatchNorm keeps 99 % of its moving statistics per step; a CPU run of a few
        # hundred steps would still serve mostly the initial (0, 1) statistics. 0.9 follows
        # the batch statistics within ~50 steps, so validation sees what training learnt.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    features = base(x, training=False) if pretrained else base(x)
    model = keras.Model(inputs, head(features), name="resnet50_pneumonia")
    return model, base


def freeze(base: keras.Model) -> None:
    """Freeze the whole base: train the new head on top of fixed ImageNet features."""
    base.trainable = False


def unfreeze_top(base: keras.Model, n_layers: int = 15) -> int:
    """Unfreeze the last ``n_layers`` of the base, BatchNorm excluded; returns how many.

    The rest is frozen *first* (the template's loop never froze anything). The caller must
    recompile afterwards for the change to take effect.
    """
    base.trainable = True
    for layer in base.layers:
        layer.trainable = False
    unfrozen = 0
    for layer in base.layers[-n_layers:] if n_layers > 0 else []:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
            unfrozen += 1
    return unfrozen
