"""What the clinician reads: words that fit the calibrated number, not-assessable results,
an honest model card. The UI against the real API (see test_with_api.py)."""

from __future__ import annotations

import io

import pytest

from jobs.model import ServedModel
from pneumonia_web.wording import reading
from tests.api.dicom_factory import dicom_bytes
from tests.web.conftest import csrf_token, web_config
from tests.web.test_with_api import card_id, finish, upload

pytestmark = pytest.mark.e2e
DASH = "\u2013"  # the en dash between an interval's ends


@pytest.fixture
def app(redis_url, api_url):
    from pneumonia_web import create_app

    return create_app(web_config(redis_url, api_url))


@pytest.mark.parametrize(
    ("label", "p", "words"),
    [
        ("Pneumonia", 0.91, "Pneumonia is likely"),
        ("Pneumonia", 0.35, "less than even, but above the threshold (30 %)"),
        (
            "Normal",
            0.22,
            "Below the threshold (30 %), but a 22 % chance of pneumonia is not negligible",
        ),
        ("Normal", 0.04, "Pneumonia is unlikely"),
        ("Normal", 0.001, "under 1 %"),
    ],
)
def test_the_sentence_fits_the_number(label, p, words):
    assert words in reading(label, p, 0.30)


def test_a_normal_with_a_notable_probability_says_so(alice, queue, fullres_xrays):
    pid = card_id(upload(alice, fullres_xrays[2]).get_data(as_text=True))
    finish(queue, pid, label="Normal", probability=0.3)  # threshold 0.5
    html = alice.get(f"/results/{pid}/card").get_data(as_text=True)
    assert "Normal" in html and "30.0 %" in html
    assert "a 30 % chance of pneumonia is not negligible" in html


def test_not_assessable_shows_the_reason_and_no_label(alice):
    token = csrf_token(alice, "/")
    data = {"csrf_token": token, "file": (io.BytesIO(dicom_bytes(body_part="KNEE")), "k.dcm")}
    resp = alice.post("/upload", data=data, headers={"HX-Request": "true"})
    assert resp.status_code == 202
    html = resp.get_data(as_text=True)
    assert "Not assessable" in html and "body part is KNEE" in html
    assert "hx-trigger" not in html  # final: the card stops polling
    assert "probability of pneumonia" not in html
    worklist = alice.get("/worklist").get_data(as_text=True)
    assert "Not assessable" in worklist and "The DICOM says the body part is KNEE" in worklist


CARD = {
    "name": "ResNet50 pneumonia classifier",
    "version": "v15",
    "threshold": 0.31,
    "figures_scope": "in-dataset: measured on held-out patients of the same dataset",
    "intended_use": "Research use only, not a diagnosis: a second reader for children's films.",
    "limitations": ["Paediatric: trained on children aged 1-5.", "Single centre: one hospital."],
    "calibration": {"method": "temperature scaling with bias", "a": 0.5, "b": -1.0, "n": 459},
    "training_data": {"name": "Kermany", "credit": "Kermany et al."},
    "metrics": {"roc_auc": 0.99, "n": 463},
    "test_metrics": {"roc_auc": 0.98, "n": 459, "ci95_method": "percentile bootstrap"},
    "evaluations": {
        "test": {
            "n": 459,
            "roc_auc": 0.981,
            "sensitivity": 0.95,
            "specificity": 0.9,
            "ci95": {
                "roc_auc": [0.97, 0.99],
                "sensitivity": [0.93, 0.97],
                "specificity": [0.85, 0.94],
            },
            "role": "held out",
            "calibration": {
                "brier": 0.051,
                "brier_uncalibrated": 0.09,
                "ece": 0.02,
                "ece_uncalibrated": 0.1,
            },
        },
        "shift_test": {
            "n": 315,
            "roc_auc": 0.962,
            "sensitivity": 0.94,
            "specificity": 0.8,
            "ci95": {
                "roc_auc": [0.94, 0.98],
                "sensitivity": [0.91, 0.97],
                "specificity": [0.71, 0.88],
            },
            "role": "latest ids",
            "calibration": {"brier": 0.07},
        },
    },
    "external_evaluations": [
        {
            "name": "other-hospital/test",
            "evaluated_at": "2026-11-27T12:00:00Z",
            "counts": {"NORMAL": 234, "PNEUMONIA": 390, "total": 624},
            "metrics": {
                "n": 624,
                "roc_auc": 0.934,
                "sensitivity": 0.941,
                "specificity": 0.709,
                "ci95": {
                    "roc_auc": [0.91, 0.95],
                    "sensitivity": [0.92, 0.96],
                    "specificity": [0.65, 0.77],
                },
            },
        }
    ],
    "input_check": {
        "evaluation": {
            "chest_xrays_rejected": 0.004,
            "noise_caught": 1.0,
            "photo_caught": 0.93,
            "knee_caught": 1.0,
            "document_caught": 1.0,
            "inverted_chest_caught": 1.0,
            "rotated_chest_caught": 0.99,
        }
    },
}


def test_model_card_labels_in_dataset_figures_and_keeps_external_apart(alice, queue):
    ServedModel(queue.r).publish(CARD)
    html = alice.get("/model").get_data(as_text=True)
    in_dataset, external = html.split("data-external", 1)
    assert "In-dataset figures." in in_dataset
    for text in (
        "98.1 %",
        f"(97.0 %{DASH}99.0 %)",
        "Latest patients (held out)",
        "96.2 %",
        "0.051",
    ):
        assert text in in_dataset
    assert "calibrated" in in_dataset and "0.090" in in_dataset  # Brier before calibration
    assert "93.4 %" not in in_dataset  # the external figure is not mixed in
    for text in ("other-hospital/test (2026-11-27)", "93.4 %", "70.9 %", f"(65.0 %{DASH}77.0 %)"):
        assert text in external
    for text in ("Research use only, not a diagnosis", "Single centre", "Not assessable", "93 %"):
        assert text in html
