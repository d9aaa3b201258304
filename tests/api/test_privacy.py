"""What the API keeps of an upload: a clean copy, no hash in sight, file names only if allowed."""

from __future__ import annotations

import pytest

from pneumonia_api import create_app
from pneumonia_api.metadata import clean_jpeg, clean_png
from tests.api.conftest import TOKEN, jpeg_bytes, png_bytes, upload
from tests.api.metadata_factory import (
    PLANTED,
    jpeg_with_patient,
    pixels,
    png_with_patient,
)

NAME = "DOE_JOHN_MRN12345.png"


@pytest.mark.parametrize(
    ("make", "media"), [(png_with_patient, "image/png"), (jpeg_with_patient, "image/jpeg")]
)
def test_the_served_image_is_a_clean_copy_with_the_same_pixels(client, auth, make, media):
    raw = make()
    assert PLANTED.encode() in raw
    resp = upload(client, auth, (raw, "x"))
    assert resp.status_code == 202, resp.get_json()
    links = resp.get_json()[0]["links"]
    served = client.get(links["image"], headers=auth)
    assert served.status_code == 200 and served.mimetype == media
    assert PLANTED.encode() not in served.data
    assert (pixels(served.data) == pixels(raw)).all()
    for marker in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"Exif", b"http://ns.adobe.com", b"ICC"):
        assert marker not in served.data
    end = b"IEND\xaeB`\x82" if media == "image/png" else b"\xff\xd9"
    assert served.data.endswith(end)  # nothing after the end of the image


def test_a_clean_file_is_copied_byte_for_byte():
    """Nothing decoding needs is dropped: a file without metadata comes back identical."""
    png = png_bytes(40, 40)
    assert clean_png(png) == png
    jpeg = jpeg_bytes(40, 40)
    cleaned = clean_jpeg(jpeg)
    assert b"JFIF" in jpeg and b"JFIF" not in cleaned  # only APP0 goes
    assert len(jpeg) - len(cleaned) == 18 and (pixels(cleaned) == pixels(jpeg)).all()


def test_the_upload_hash_is_never_shown(client, auth):
    resp = upload(client, auth, (png_bytes(), "a.png"))
    record = client.get(resp.get_json()[0]["links"]["self"], headers=auth).get_json()
    assert "sha256" not in record
    listed = client.get("/v1/predictions", headers=auth).get_json()["items"]
    assert all("sha256" not in item for item in listed)


def test_file_names_are_kept_for_display_by_default(client, auth, redis_client):
    resp = upload(client, auth, (png_bytes(), NAME))
    record = client.get(resp.get_json()[0]["links"]["self"], headers=auth).get_json()
    assert record["filename"] == NAME
    key = f"pneumonia:pred:{record['id']}"
    ttl = redis_client.ttl(key)
    assert 0 < ttl <= 30 * 24 * 3600  # the name expires with its record


def test_store_filenames_off_keeps_no_name_anywhere_in_redis(redis_url, redis_client):
    app = create_app({"REDIS_URL": redis_url, "API_TOKEN": TOKEN, "STORE_FILENAMES": False})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client = app.test_client()
    resp = upload(client, auth, (png_bytes(), NAME))
    assert resp.status_code == 202
    record = client.get(resp.get_json()[0]["links"]["self"], headers=auth).get_json()
    assert record["filename"] == ""
    for key in redis_client.scan_iter():
        assert b"DOE" not in key
        kind = redis_client.type(key)
        if kind == b"hash":
            assert b"DOE" not in b"".join(redis_client.hvals(key))
        elif kind == b"string":
            assert b"DOE" not in redis_client.get(key)
