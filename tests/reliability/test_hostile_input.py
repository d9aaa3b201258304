"""Hostile input: fuzzed and mutated files, bombs, polyglots and nasty file names.

Only the documented 4xx errors may come out of upload validation, never an exception.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model import preprocess
from pneumonia_api import images
from pneumonia_api.errors import ApiError
from tests.api.conftest import jpeg_bytes, png_bytes, upload
from tests.api.dicom_factory import dicom_bytes

from . import results

DOCUMENTED = {
    "empty_file",
    "unsupported_type",
    "truncated_image",
    "multi_frame",
    "too_many_pixels",
    "image_too_small",
    "invalid_dicom",
}
LIMITS = images.Limits(max_pixels=50_000_000, min_side=32)
SEEDS = [
    png_bytes(64, 64, seed=1),
    png_bytes(96, 48, seed=2, mode="RGB"),
    jpeg_bytes(64, 80, seed=3),
    dicom_bytes(),
    dicom_bytes(photometric="MONOCHROME1"),
]
outcomes: Counter = Counter()


def check(data: bytes) -> None:
    """Validation either raises a documented 4xx or accepts, and then the worker either
    decodes the stored image or fails the job with its clear message (PreprocessError)."""
    try:
        accepted = images.validate(data, "fuzz.bin", LIMITS)
    except ApiError as exc:
        assert 400 <= exc.status < 500
        assert exc.code in DOCUMENTED, exc.code
        outcomes[exc.code] += 1
        return
    assert accepted.width * accepted.height <= LIMITS.max_pixels
    try:
        preprocess.prepare(accepted.data, 32)
    except preprocess.PreprocessError:
        outcomes["accepted, then failed in the worker"] += 1
    else:
        outcomes["accepted"] += 1


@st.composite
def mutated(draw):
    """A valid PNG/JPEG/DICOM with bytes flipped, cut, duplicated or spliced."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "header"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 256))]
        elif op == "header" and len(data) > 40:  # hit the size fields of the headers
            at = draw(st.integers(0, 40))
            data[at : at + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data)


FUZZ = settings(
    max_examples=5000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(mutated())
def test_mutated_images_only_give_documented_errors(data):
    check(data)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
        st.binary(max_size=512).map(lambda b: b"\xff\xd8\xff" + b),
        st.binary(max_size=512).map(lambda b: b"\0" * 128 + b"DICM" + b),
    )
)
def test_random_bytes_only_give_documented_errors(data):
    check(data)


def test_fuzz_figures_are_recorded():
    """Runs after the two fuzz tests in file order: keep the counts for RELIABILITY.md."""
    total = sum(outcomes.values())
    assert total >= 10_000
    results.record("fuzz_upload_validation", files=total, exceptions=0, outcomes=dict(outcomes))


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real JPEG whose SOF header is rewritten to declare another size."""
    data = bytearray(jpeg_bytes(64, 64))
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            break
        i += 2 + length
    return bytes(data)


def _png_bomb(side=30000) -> bytes:
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


BOMBS = {
    "png 30000x30000": _png_bomb(),
    "jpeg declaring 65000x65000": _jpeg_with_size(65000, 65000),
    "dicom declaring 65535x65535": dicom_bytes(rows=65535, cols=65535),
}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS: "5" to clear_refs (Linux).
    Without it the peak is the whole session's, and a bomb decoded after a bigger test would
    not show."""
    Path("/proc/self/clear_refs").write_text("5")


@pytest.mark.parametrize("name", list(BOMBS))
def test_decompression_bombs_are_refused_before_decoding(client, auth, redis_client, name):
    import time

    upload(client, auth, (png_bytes(64, 64), "warm.png"))  # imports and pools warmed first
    stored = set(redis_client.scan_iter("*:img:*"))
    _reset_peak()
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    resp = upload(client, auth, (BOMBS[name], "bomb"))
    elapsed = time.perf_counter() - t0
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "too_many_pixels"
    grown_mb = _status_mb("VmHWM") - before
    assert grown_mb < 100, "pixels must not be decoded"
    assert set(redis_client.scan_iter("*:img:*")) == stored  # nothing of the bomb stored
    results.record(
        f"bomb: {name}",
        file_bytes=len(BOMBS[name]),
        status=resp.status_code,
        seconds=round(elapsed, 3),
        memory_growth_mb=round(grown_mb, 1),
    )


def test_polyglot_png_with_html_is_served_only_as_an_image(client, auth):
    payload = png_bytes(64, 64) + b"<html><script>alert(1)</script></html>"
    resp = upload(client, auth, (payload, "x.html"))
    assert resp.status_code == 202
    image = client.get(resp.get_json()[0]["links"]["image"], headers=auth)
    assert image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in image.data  # the clean copy ends at IEND


def test_dicom_preamble_polyglot_is_handled(client, auth):
    """The DICOM preamble may hold anything (e.g. a PNG or PE header): content decides."""
    raw = bytearray(dicom_bytes())
    raw[:8] = b"\x89PNG\r\n\x1a\n"
    resp = upload(client, auth, (bytes(raw), "poly.dcm"))
    assert resp.status_code in (202, 400)
    assert resp.get_json()[0 if resp.status_code == 202 else "error"]


@pytest.mark.parametrize(
    "name",
    [
        "../../../../etc/passwd",
        "..\\..\\windows\\system32\\cmd.exe",
        "chest\x00.png.exe",
        "a\r\nSet-Cookie: pwned=1\r\n.png",
        "x" * 10_240 + ".png",
        "<script>alert(1)</script>.png",
    ],
)
def test_hostile_filenames_are_neutralised(client, auth, name):
    resp = upload(client, auth, (png_bytes(), name))
    if resp.status_code == 400:  # a raw CRLF breaks the multipart part: a clean refusal
        assert resp.get_json()["error"]["code"] == "invalid_upload"
        return
    assert resp.status_code == 202
    stored = resp.get_json()[0]["filename"]
    assert "/" not in stored and "\\" not in stored
    assert not any(c in stored for c in "\x00\r\n")
    assert len(stored) <= 200
    assert "Set-Cookie" not in str(resp.headers)


def test_oversized_multipart_body_is_refused(client, auth):
    big = np.zeros(9 * 1024 * 1024, np.uint8).tobytes()
    resp = upload(client, auth, (big, "big.png"))
    assert resp.status_code == 413
