"""One short real training run end to end: model, card, evaluation, evaluate CLI, publish."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from model import card, evaluate, train
from model.serving import selection
from model.store import LocalStore
from model.training.recipe import run
from tests.model.conftest import make_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ResNet50 trained for one epoch on 32 px generated X-rays (kept for the module)."""
    root = tmp_path_factory.mktemp("smoke")
    make_folder(root / "data" / "train", 12, 12)
    out = run(
        train.parse_config(
            [
                "--data",
                str(root / "data"),
                "--img-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--steps-per-epoch",
                "3",
                "--val-fraction",
                "0.25",
                "--test-fraction",
                "0.25",
                "--output",
                str(root / "run"),
                "--publish",
                str(root / "store"),
                "--verbose",
                "2",
            ]
        )
    )
    return root, out


@pytest.mark.slow
def test_the_saved_model_loads_and_predicts(trained):
    _, out = trained
    model = keras.models.load_model(out / "model.keras", compile=False)
    scores = np.asarray(model(np.zeros((2, 32, 32, 3), np.float32), training=False))
    assert scores.shape == (2, 1) and np.all((scores >= 0) & (scores <= 1))


@pytest.mark.slow
def test_the_model_file_has_no_optimizer_state(trained):
    """Serving needs weights only; Adam's moments would triple the file."""
    _, out = trained
    model = keras.models.load_model(out / "model.keras")
    assert getattr(model, "optimizer", None) is None  # saved uncompiled
    assert (out / "model.keras").stat().st_size < 1.2 * 4 * model.count_params()
    assert model.get_layer("rescale") is not None  # normalisation travels with the model


@pytest.mark.slow
def test_the_card_is_complete(trained):
    _, out = trained
    model_card = json.loads((out / "model_card.json").read_text())
    assert card.missing_keys(model_card) == []
    assert model_card["input_size"] == 32 and 0 < model_card["threshold"] <= 1
    assert "10.17632/rscbjbr9sj.2" in model_card["training_data"]["credit"]
    assert model_card["training_data"]["manifest_sha256"] is None  # no MANIFEST.sha256: unverified
    assert {"train", "val", "test", "calib"} <= set(model_card["training_data"]["splits"])
    assert set(evaluate.METRIC_KEYS) <= set(model_card["metrics"])
    # issue 15: intervals, calibration, in-dataset scope, intended use, why training stopped
    test = model_card["evaluations"]["test"]
    assert set(test["ci95"]) == {"roc_auc", "sensitivity", "specificity"}
    assert {"brier", "ece", "brier_uncalibrated"} <= set(test["calibration"])
    assert set(model_card["calibration"]) >= {"a", "b", "n"}
    assert "in-dataset" in model_card["figures_scope"] and model_card["limitations"]
    assert model_card["stopped_by"] == "epoch ceiling"
    assert model_card["input_check"]["params"]["threshold"] > 0


@pytest.mark.slow
def test_evaluation_json_and_plots(trained):
    _, out = trained
    report = json.loads((out / "evaluation.json").read_text())
    for split in ("val", "test"):
        assert set(evaluate.METRIC_KEYS) <= set(report[split])
        assert (out / f"roc_pr_{split}.png").is_file()
        assert (out / f"reliability_{split}.png").is_file()


@pytest.mark.slow
def test_it_was_published_with_its_artefacts_and_check_set(trained):
    root, out = trained
    store = LocalStore(root / "store")
    model_card = json.loads((out / "model_card.json").read_text())
    version = model_card["version"]
    assert store.current_version() == version  # the first version of an empty store
    published = {p.name for p in store.fetch(version).iterdir()}
    assert {"model.keras", "model_card.json", "evaluation.json", "history.json", "train.log",
            "roc_pr_val.png", "quality.npz"} <= published  # fmt: skip
    assert "checkpoint.keras" not in published
    assert set(model_card["files"]) == {"model.keras", "quality.npz"}
    images, labels = selection.check_set(store.fetch(version), model_card, 32, None, 256)
    assert len(labels) == model_card["quality_check_set"]["images"] > 0
    assert images.shape[1:] == (32, 32, 3) and 0 < labels.sum() < len(labels)


@pytest.mark.slow
def test_evaluate_cli_on_a_test_only_folder(trained, tmp_path):
    _, out = trained
    make_folder(tmp_path / "kermany" / "test", 3, 3)
    report_path = tmp_path / "report.json"
    args = ["--model", str(out), "--data", str(tmp_path / "kermany"), "--out", str(report_path)]
    assert evaluate.main(args) == 0
    report = json.loads(report_path.read_text())
    assert report["split"] == "test" and report["counts"]["total"] == 12
    assert set(evaluate.METRIC_KEYS) <= set(report["metrics"])
    assert report_path.with_suffix(".png").is_file()


@pytest.mark.slow
def test_evaluate_cli_on_a_bare_folder(trained, tmp_path):
    _, out = trained
    make_folder(tmp_path / "bare", 2, 2)
    assert evaluate.main(["--model", str(out), "--data", str(tmp_path / "bare")]) == 0
    assert (out / "evaluation-bare.json").is_file()


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert train.main(["--data", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    assert "Kermany" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrained_recipe_trains_head_then_fine_tunes(tmp_path):
    """The GPU recipe's two phases, from a local weights file (the offline --weights PATH)."""
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    weights = tmp_path / "resnet50_notop.weights.h5"
    base.save_weights(weights)
    make_folder(tmp_path / "data" / "train", 10, 10)
    argv = ["--data", str(tmp_path / "data"), "--weights", str(weights), "--img-size", "32"]
    argv += ["--head-epochs", "1", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8"]
    argv += ["--val-fraction", "0.3", "--test-fraction", "0.3", "--output", str(tmp_path / "run")]
    argv += ["--shift-fraction", "0", "--calib-fraction", "0"]  # 20 patients: keep some to train
    out = run(train.parse_config([*argv, "--verbose", "2"]))
    model_card = json.loads((out / "model_card.json").read_text())
    assert model_card["epochs"] == 2  # one head epoch + one fine-tuning epoch
    assert model_card["weights"].startswith("fine-tuned from")
    assert model_card["hyperparameters"]["learning_rate"] == 1e-5
    assert "imagenet_centre" in [
        la.name for la in keras.models.load_model(out / "model.keras").layers
    ]
