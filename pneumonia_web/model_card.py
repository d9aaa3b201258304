"""The model card: what model answers, what it was trained on (with credit), how well it does."""

from __future__ import annotations

from flask import Blueprint, render_template

from pneumonia_web.api_client import get_api

bp = Blueprint("model_card", __name__)

METRICS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("sensitivity", "Sensitivity (recall)"),
    ("specificity", "Specificity"),
    ("precision", "Precision (PPV)"),
    ("f1", "F1 score"),
    ("accuracy", "Accuracy"),
)


@bp.get("/model")
def index():
    """Render the card, training progress and serving workers the API reports."""
    info = get_api().model()
    return render_template(
        "model_card/index.html",
        card=info.get("card") or None,
        training=info.get("training") or None,
        workers=info.get("workers") or [],
        metrics=METRICS,
    )
