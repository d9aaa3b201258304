"""End-to-end fixtures: a model trained on a planted feature, for heatmap tests."""

from __future__ import annotations

import pytest

from devstack.tiny_model import build_planted_model


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory):
    """A tiny CNN for which a bright corner square means "Pneumonia" (trained once)."""
    return build_planted_model(tmp_path_factory.mktemp("planted") / "planted-1")


@pytest.fixture
def planted_store(tmp_path, planted_dir):
    """A model store serving the planted model."""
    from model.store import LocalStore

    store = LocalStore(tmp_path / "models")
    store.publish(planted_dir, "planted-1")
    return store
