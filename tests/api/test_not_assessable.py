"""Uploads the model must not read are kept, end ``not_assessable`` at once, never labelled."""

from __future__ import annotations

import pytest

from jobs.queue import JobQueue

from .conftest import png_bytes, upload
from .dicom_factory import dicom_bytes


def _queued_jobs(redis_client) -> int:
    stream = JobQueue(redis_client).keys.stream
    return redis_client.xlen(stream) if redis_client.exists(stream) else 0


def _status(client, auth, item) -> dict:
    return client.get(item["links"]["self"], headers=auth).get_json()


@pytest.mark.parametrize(
    ("raw", "name", "words"),
    [
        (dicom_bytes(modality="MR"), "brain.dcm", "modality is MR"),
        (dicom_bytes(body_part="KNEE"), "knee.dcm", "body part is KNEE"),
        (dicom_bytes(view="LL"), "lateral.dcm", "lateral"),
        (png_bytes(600, 100), "strip.png", "aspect ratio 6.0"),
    ],
)
def test_not_a_frontal_chest_film_ends_not_assessable(client, auth, redis_client, raw, name, words):
    resp = upload(client, auth, (raw, name))
    assert resp.status_code == 202, resp.get_json()
    item = resp.get_json()[0]
    assert item["status"] == "not_assessable"
    got = _status(client, auth, item)
    assert got["status"] == "not_assessable"
    assert got["label"] is None and got["probability"] is None
    assert words in got["reason"]
    # kept like any upload (the clinician sees the image), but no job is queued for a worker
    assert client.get(item["links"]["image"], headers=auth).status_code == 200
    assert _queued_jobs(redis_client) == 0


@pytest.mark.parametrize(
    "raw",
    [
        dicom_bytes(),  # CR, no body part or view: nothing held against it
        dicom_bytes(modality="DX", body_part="CHEST", view="PA"),
        png_bytes(300, 150),  # 2:1, a wide paediatric film is still a film
    ],
)
def test_plausible_chest_films_are_queued(client, auth, redis_client, raw):
    resp = upload(client, auth, (raw, "chest.dcm"))
    assert resp.status_code == 202
    item = resp.get_json()[0]
    assert item["status"] == "queued"
    assert _status(client, auth, item)["reason"] is None
    assert _queued_jobs(redis_client) == 1
