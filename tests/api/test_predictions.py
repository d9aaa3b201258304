"""Upload, read and list predictions through the real app and a real Redis."""

from __future__ import annotations

import pytest

from jobs.queue import JobQueue
from pneumonia_api import create_app

from .conftest import TOKEN, jpeg_bytes, png_bytes, upload


def test_upload_is_queued_and_readable(client, auth, redis_client):
    resp = upload(client, {**auth, "X-Uploader": "dr.house"}, (jpeg_bytes(), "chest.jpeg"))
    assert resp.status_code == 202
    [item] = resp.get_json()
    assert item["status"] == "queued"
    assert resp.headers["Location"] == item["links"]["self"]

    got = client.get(item["links"]["self"], headers=auth).get_json()
    assert got["filename"] == "chest.jpeg"
    assert got["uploader"] == "dr.house"
    assert got["media_type"] == "image/jpeg"
    assert (got["width"], got["height"]) == (64, 64)
    # the job is on the stream for the workers, the image is stored with a TTL
    assert redis_client.xlen(JobQueue(redis_client).keys.stream) == 1
    image = client.get(item["links"]["image"], headers=auth)
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert redis_client.ttl(JobQueue(redis_client).keys.image(item["id"])) > 0


def test_several_files_in_one_request(client, auth):
    resp = upload(client, auth, (png_bytes(seed=1), "a.png"), (png_bytes(seed=2), "b.png"))
    assert resp.status_code == 202
    assert [i["filename"] for i in resp.get_json()] == ["a.png", "b.png"]
    assert "Location" not in resp.headers


def test_history_is_newest_first_and_paginates(client, auth):
    ids = [
        upload(client, auth, (png_bytes(seed=i), f"{i}.png")).get_json()[0]["id"] for i in range(5)
    ]
    first = client.get("/v1/predictions?limit=3", headers=auth).get_json()
    assert [p["id"] for p in first["items"]] == ids[::-1][:3]
    rest = client.get(
        f"/v1/predictions?limit=3&before={first['next_before']}", headers=auth
    ).get_json()
    assert [p["id"] for p in rest["items"]] == ids[::-1][3:]
    assert rest["next_before"] is None


def test_history_filters_by_uploader(client, auth):
    upload(client, {**auth, "X-Uploader": "alice"}, (png_bytes(seed=1), "a.png"))
    upload(client, {**auth, "X-Uploader": "bob"}, (png_bytes(seed=2), "b.png"))
    items = client.get("/v1/predictions?uploader=bob", headers=auth).get_json()["items"]
    assert [i["uploader"] for i in items] == ["bob"]


@pytest.mark.parametrize("path", ["/v1/predictions", "/v1/predictions/" + "0" * 32, "/v1/model"])
def test_v1_requires_the_service_token(client, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"


def test_unknown_prediction_is_a_json_404(client, auth):
    for pid in ("0" * 32, "../../etc/passwd", "x" * 500):
        resp = client.get(f"/v1/predictions/{pid}", headers=auth)
        assert resp.status_code == 404
        assert resp.get_json()["error"]["code"] in ("not_found",)


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=abc", "limit=100000", "before=-1", "label=maybe"]
)
def test_bad_list_parameters_say_what_is_wrong(client, auth, query):
    resp = client.get(f"/v1/predictions?{query}", headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_parameter"


def test_redis_down_gives_503_and_health_still_answers():
    app = create_app(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "API_TOKEN": TOKEN, "REDIS_TIMEOUT_SECONDS": 0.2}
    )
    client = app.test_client()
    resp = upload(client, {"Authorization": f"Bearer {TOKEN}"}, (png_bytes(), "a.png"))
    assert resp.status_code == 503
    assert "Retry" in resp.get_json()["error"]["message"]
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["redis"] is False


# Nothing half-written when Redis refuses a request part-way: proved with a real
# redis-server at its maxmemory in tests/api/test_no_loss.py
# (test_a_request_that_redis_refuses_half_way_saves_none_of_its_files).


def test_production_refuses_to_start_without_a_token(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="API_TOKEN"):
        create_app()
