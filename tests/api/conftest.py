"""API fixtures: the real app factory against the session's real Redis."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from urllib3 import encode_multipart_formdata

from pneumonia_api import create_app

TOKEN = "test-token-" + "x" * 32


@pytest.fixture
def app(redis_url):
    return create_app(
        {
            "REDIS_URL": redis_url,
            "API_TOKEN": TOKEN,
            "TESTING": True,
            "MAX_UPLOAD_BYTES": 8 * 1024 * 1024,
            "MAX_FILES_PER_REQUEST": 5,
            "MAX_IMAGE_PIXELS": 30_000_000,
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {TOKEN}"}


def png_bytes(width=64, height=64, seed=0, mode="L") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (height, width), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(width=64, height=64, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (height, width), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def upload(client, headers, *files):
    """POST files given as (bytes, filename) pairs, encoded as the UI's client (requests, i.e.
    urllib3) encodes them: werkzeug's test encoder writes an empty file's part without the
    line break RFC 2046 puts before the next boundary, which no real client sends."""
    body, content_type = encode_multipart_formdata([("file", (name, b)) for b, name in files])
    return client.post(
        "/v1/predictions", data=body, headers={**headers, "Content-Type": content_type}
    )
