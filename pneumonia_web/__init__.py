"""The clinician web UI: log in, drop X-rays, read results, browse the worklist.

It talks only to the prediction API (``api_client``) and keeps its own users, login counters
and audit log in a separate Redis (``db``).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` (tests) overrides settings read from the environment."""
    from pneumonia_web import (
        admin,
        api_client,
        auth,
        cli,
        db,
        errors,
        health,
        heatmap,
        metrics,
        model_card,
        report,
        results,
        templating,
        upload,
        verdict,
        worklist,
    )
    from pneumonia_web.config import Config, check_production, fill_dev_defaults
    from pneumonia_web.extensions import csrf, limiter, login_manager

    app = Flask(__name__)
    app.config.from_object(Config())
    if config:
        app.config.update(config)
    fill_dev_defaults(app.config)
    check_production(app.config)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"] + 1024 * 1024
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["WEB_REDIS_URL"])
    app.config.setdefault("RATELIMIT_KEY_PREFIX", f"{app.config['WEB_KEY_PREFIX']}:limiter")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    if app.config["PROXY_COUNT"]:
        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    db.init_app(app)
    api_client.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    auth.init_app(app, login_manager)
    templating.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    for module in (auth, upload, results, verdict, worklist, model_card, admin, health):
        app.register_blueprint(module.bp)
    for module in (heatmap, report):  # issue 18: where the model looked, printable report
        app.register_blueprint(module.bp)
    metrics.init_app(app)  # after the limiter (it exempts /metrics); nginx hides /metrics
    return app
