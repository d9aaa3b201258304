"""The prediction API: accepts X-rays, queues them for the inference workers, serves results."""

from __future__ import annotations

import logging

from flask import Flask

from .config import Config


def create_app(config: dict | None = None) -> Flask:
    """App factory (gunicorn: ``'pneumonia_api:create_app()'``).

    ``config`` overrides the environment, which is how tests point the app at their Redis.
    """
    app = Flask(__name__)
    settings = Config()
    app.config.update(settings.as_flask())
    if config:
        app.config.update(config)
    for key, value in app.config.items():
        if hasattr(settings, key):
            setattr(settings, key, value)
    settings.check()
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"]
    app.json.sort_keys = False
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from . import errors, health, heatmaps, jobstore, metrics, predictions, verdicts, worklist

    errors.init_app(app)
    jobstore.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(predictions.bp)
    app.register_blueprint(verdicts.bp)
    app.register_blueprint(worklist.bp)
    app.register_blueprint(heatmaps.bp)
    return app
