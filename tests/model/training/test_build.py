"""The architecture: the design's head, normalisation inside, and freezing that really freezes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.training.build import augmentation, build_model, freeze, unfreeze_top

SIZE = 32


@pytest.fixture(scope="module")
def scratch():
    return build_model(SIZE, None, augment=1.0)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A ResNet50 notop weights file, as an offline GPU box would be given (random here)."""
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    path = tmp_path_factory.mktemp("w") / "resnet50_notop.weights.h5"
    base.save_weights(path)
    return path


def test_head_is_the_design(scratch):
    model, _ = scratch
    names = [layer.name for layer in model.layers]
    assert names[-10:] == [
        "gap",
        "fc0",
        "fc0_bn",
        "fc0_relu",
        "fc0_dropout",
        "fc1",
        "fc1_bn",
        "fc1_relu",
        "fc1_dropout",
        "pneumonia",
    ]
    assert model.get_layer("fc0").units == 256
    assert model.get_layer("fc0").kernel_regularizer.l2 == pytest.approx(1e-3)
    assert model.get_layer("fc1_dropout").rate == 0.3
    assert model.output_shape == (None, 1)


def test_scratch_model_rescales_inside_and_uses_fast_batchnorm(scratch):
    model, base = scratch
    assert model.get_layer("rescale").scale == pytest.approx(1 / 127.5)
    bns = [la for la in base.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and all(la.momentum == 0.9 for la in bns)


def test_augmentation_has_no_flips_and_is_off_at_inference(scratch):
    kinds = {type(layer).__name__ for layer in augmentation().layers}
    assert kinds == {"RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast"}
    model, _ = scratch
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))


def test_pretrained_from_a_local_file_freezes_then_unfreezes_the_top(weights_file):
    model, base = build_model(SIZE, str(weights_file), augment=0.0)
    assert "imagenet_centre" in [layer.name for layer in model.layers]
    freeze(base)
    head_only = {w.path for w in model.trainable_weights}
    assert head_only and not any(w.path.startswith(base.name) for w in model.trainable_weights)
    n = unfreeze_top(base, 15)
    last = base.layers[-15:]
    expected = [la for la in last if not isinstance(la, keras.layers.BatchNormalization)]
    assert n == len(expected) > 0
    for layer in base.layers:
        should = layer in expected
        assert layer.trainable == should, layer.name
    assert not any(
        la.trainable for la in base.layers if isinstance(la, keras.layers.BatchNormalization)
    )
