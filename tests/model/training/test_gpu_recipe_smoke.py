"""The gpu recipe's flags on a CPU, end to end: train, export, int8, a real worker, a result.

Two real training steps (one head step, one fine-tuning step) with what the GPU box runs:
224 px, mixed precision, augmentation 1.0, pretrained weights (a local random ResNet50 file
stands in for ImageNet's, which are not available offline); then the published version goes
through the ONNX export and int8 quantisation into a real worker on a real Redis, which
answers a real upload. What the GPU trains is what the CPU workers serve.
"""

from __future__ import annotations

import json

import keras
import pytest

from model import train
from model.inference import Worker
from model.store import LocalStore
from model.training.recipe import run
from tests.model.conftest import jpeg_bytes, make_folder
from tests.model.test_inference import records, settings, submit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpu_recipe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu-recipe")
    make_folder(root / "data" / "train", 8, 8)
    weights = root / "resnet50_notop.weights.h5"
    keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(224, 224, 3)
    ).save_weights(weights)
    config = train.parse_config(
        [
            "--recipe", "gpu", "--allow-cpu", "--mixed-precision", "on",
            "--weights", str(weights), "--data", str(root / "data"),
            "--head-epochs", "1", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
            "--val-fraction", "0.25", "--test-fraction", "0.25",
            "--output", str(root / "run"), "--publish", str(root / "store"), "--verbose", "2",
        ]
    )  # fmt: skip
    assert (config.img_size, config.augment, config.pretrained) == (224, 1.0, True)
    out = run(config)
    return root, out


def test_a_gpu_recipe_run_trains_in_mixed_precision_and_saves_float32(gpu_recipe_run):
    _, out = gpu_recipe_run
    card = json.loads((out / "model_card.json").read_text())
    assert card["recipe"] == "gpu" and card["input_size"] == 224
    assert card["hyperparameters"]["mixed_precision"] is True
    assert card["hyperparameters"]["xla"] is False  # never XLA around augmentation
    assert card["epochs"] == 2
    model = keras.saving.load_model(out / "model.keras", compile=False)
    layers, policies = list(model.layers), set()
    while layers:
        layer = layers.pop()
        policies.add(layer.dtype_policy.name)
        layers.extend(getattr(layer, "layers", []))
    assert policies == {"float32"}
    assert keras.mixed_precision.global_policy().name == "float32"  # reset after the run


def test_the_worker_serves_it_in_int8_and_answers_an_upload(
    gpu_recipe_run, redis_client, redis_url, tmp_path
):
    root, out = gpu_recipe_run
    version = json.loads((out / "model_card.json").read_text())["version"]
    store = LocalStore(root / "store")
    assert store.current_version() == version
    (job,) = submit(redis_client, 1, image=jpeg_bytes(7, size=300, bright=True))
    worker = Worker(
        settings(
            redis_url,
            store.root,
            backend="openvino-int8",
            calibration_data=str(root / "data"),
            model_cache_dir=str(tmp_path / "cache"),
        )
    )
    assert worker.work(burst=True) == 1
    assert worker.predictor.backend == "openvino-int8" and worker.predictor.precision == "int8"
    (rec,) = records(redis_client, [job])
    assert rec.status == "done" and rec.model_version == version
    assert 0.0 <= rec.probability <= 1.0
