"""Bad input gets a 4xx whose message says what to do; nothing is stored for it."""

from __future__ import annotations

import io
import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from urllib3 import encode_multipart_formdata

from pneumonia_api.images import safe_filename

from .conftest import jpeg_bytes, png_bytes, upload
from .dicom_factory import PATIENT_ID, PATIENT_NAME, dicom_bytes


def png_bomb(side: int = 20000) -> bytes:
    """A valid PNG of side x side 1-bit pixels: ~50 MB of pixels in a few kB of file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + b"\x00" * (side // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def animated_png() -> bytes:
    frames = [Image.new("L", (64, 64), c) for c in (0, 128, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def flipped(data: bytes, at: float) -> bytes:
    """One byte changed at a fraction of the file: damage inside the compressed pixels."""
    out = bytearray(data)
    out[int(len(out) * at)] ^= 0x55
    return bytes(out)


def without_end(data: bytes) -> bytes:
    """A JPEG cut just before its end-of-image marker (an interrupted copy)."""
    assert data.endswith(b"\xff\xd9")
    return data[:-2]


BAD = [
    ("text named .png", b"this is not an image at all\n" * 10, "scan.png", 415, "unsupported_type"),
    ("empty file", b"", "empty.jpeg", 400, "empty_file"),
    ("truncated jpeg", jpeg_bytes(256, 256)[:600], "cut.jpeg", 400, "truncated_image"),
    ("truncated png", png_bytes(256, 256)[:300], "cut.png", 400, "truncated_image"),
    ("jpeg cut at its end", without_end(jpeg_bytes(256, 256)), "end.jpeg", 400, "truncated_image"),
    ("png, a pixel byte changed", flipped(png_bytes(), 0.6), "b.png", 400, "truncated_image"),
    ("png bomb", png_bomb(), "bomb.png", 400, "too_many_pixels"),
    ("animated png", animated_png(), "anim.png", 400, "multi_frame"),
    ("tiny image", png_bytes(8, 8), "tiny.png", 400, "image_too_small"),
    ("multi-frame dicom", dicom_bytes(frames=3), "cine.dcm", 400, "multi_frame"),
    ("dicom without pixels", dicom_bytes(with_pixels=False), "nopix.dcm", 400, "invalid_dicom"),
    ("dicom bomb", dicom_bytes(rows=60000, cols=60000), "big.dcm", 400, "too_many_pixels"),
    ("dicom truncated pixels", dicom_bytes()[:-2000], "cut.dcm", 400, "invalid_dicom"),
]


@pytest.mark.parametrize(
    ("data", "name", "status", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_file_is_refused_with_a_helpful_json_error(
    client, auth, redis_client, data, name, status, code
):
    resp = upload(client, auth, (data, name))
    assert resp.status_code == status, resp.get_json()
    err = resp.get_json()["error"]
    assert err["code"] == code
    assert len(err["message"]) > 20  # says what to do, not just "bad request"
    assert not [k for k in redis_client.keys() if b":pred:" in k or b":img:" in k]


def test_one_bad_file_refuses_the_whole_request(client, auth, redis_client):
    resp = upload(client, auth, (png_bytes(), "good.png"), (b"garbage", "bad.png"))
    assert resp.status_code == 415
    assert "bad.png" in resp.get_json()["error"]["message"]
    assert not [k for k in redis_client.keys() if b":pred:" in k]


def test_no_file_field(client, auth):
    resp = client.post("/v1/predictions", data={"other": "x"}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "no_file"


def test_too_many_files(client, auth):
    files = [(png_bytes(seed=i), f"{i}.png") for i in range(6)]
    resp = upload(client, auth, *files)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "too_many_files"


def test_a_body_of_thousands_of_tiny_parts_is_refused(client, auth):
    body = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(5000)
    )
    resp = client.post(
        "/v1/predictions",
        data=body + b"--B--\r\n",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "too_many_files"


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("application/json", b'{"file": "xray.jpeg"}', "no_file"),
        ("multipart/form-data", b"no boundary given", "no_file"),
        ("multipart/form-data; boundary=B", b"garbage, not a multipart body", "invalid_upload"),
    ],
    ids=["json", "no boundary", "not multipart"],
)
def test_a_body_that_is_not_a_form_upload_says_how_to_send_one(
    client, auth, content_type, body, code
):
    resp = client.post("/v1/predictions", data=body, headers={**auth, "Content-Type": content_type})
    assert resp.status_code == 400
    err = resp.get_json()["error"]
    assert err["code"] == code and "curl -F file=@xray.jpeg" in err["message"]


def test_text_fields_beside_the_file_are_ignored_and_names_kept(client, auth):
    body, content_type = encode_multipart_formdata(
        [("note", "from the ward"), ("file", ("Röntgen Thorax.png", png_bytes()))]
    )
    resp = client.post("/v1/predictions", data=body, headers={**auth, "Content-Type": content_type})
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()[0]["filename"] == "Röntgen Thorax.png"


def test_oversized_body_is_413_json(client, auth):
    resp = upload(client, auth, (b"\x89PNG\r\n\x1a\n" + b"\0" * (9 * 1024 * 1024), "huge.png"))
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"


def test_format_is_recognised_by_content_not_extension(client, auth):
    resp = upload(client, auth, (png_bytes(), "xray.jpeg"))
    assert resp.status_code == 202
    got = client.get(resp.get_json()[0]["links"]["self"], headers=auth).get_json()
    assert got["media_type"] == "image/png"


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_is_stored_as_pixels_only(client, auth, redis_client, caplog, photometric):
    caplog.set_level(logging.DEBUG)
    raw = dicom_bytes(photometric=photometric)
    resp = upload(client, {**auth, "X-Uploader": "dr.who"}, (raw, "chest.dcm"))
    assert resp.status_code == 202, resp.get_json()
    item = resp.get_json()[0]
    got = client.get(item["links"]["self"], headers=auth).get_json()
    assert got["media_type"] == "image/png" and (got["width"], got["height"]) == (64, 64)

    stored = client.get(item["links"]["image"], headers=auth).data
    pixels = np.asarray(Image.open(io.BytesIO(stored)))
    ramp = (np.arange(64 * 64).reshape(64, 64) * 3) % 4096
    # MONOCHROME1 means high values are dark: the stored image is inverted to match
    corr = np.corrcoef(pixels.ravel(), ramp.ravel())[0, 1]
    assert corr > 0.99 if photometric == "MONOCHROME2" else corr < -0.99

    everything = (
        b"".join(redis_client.dump(k) or b"" for k in redis_client.keys()) + caplog.text.encode()
    )
    for secret in (PATIENT_NAME, PATIENT_ID, "Doe", "St Example Hospital", "19700101"):
        assert secret.encode() not in everything


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\scan.png", "scan.png"),
        ("a\x00b\r\nc.png", "abc.png"),
        ("", "upload"),
        ("x" * 10_000, "x" * 200),
    ],
)
def test_filenames_are_made_safe(raw, expected):
    assert safe_filename(raw) == expected
