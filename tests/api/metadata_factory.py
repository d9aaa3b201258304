"""X-rays that carry a patient where exporters put one: in the file's metadata and tail.

A PNG with the name in tEXt, iTXt, zTXt, eXIf and an unknown private chunk, plus bytes after
IEND; a JPEG with it in EXIF (APP1), XMP (APP1), IPTC (APP13), an ICC profile (APP2) and a
comment (COM), plus bytes after EOI. Used to prove that the stored and served copy is clean.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, PngImagePlugin

PLANTED = "PLANTED^PATIENT^MRN7731"


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (height, width), dtype=np.uint8)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = PLANTED  # ImageDescription
    exif[0x013B] = PLANTED  # Artist
    return exif.tobytes()


def png_with_patient(width: int = 96, height: int = 96, seed: int = 7) -> bytes:
    """A valid PNG whose metadata and tail carry :data:`PLANTED`."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", PLANTED)
    info.add_itxt("PatientName", PLANTED, lang="en", tkey="Patient")
    info.add_text("Comment", PLANTED, zip=True)
    buf = io.BytesIO()
    Image.fromarray(_pixels(width, height, seed), "L").save(
        buf, format="PNG", pnginfo=info, exif=_exif()
    )
    data = buf.getvalue()
    iend = data.rindex(b"IEND") - 4
    private = _chunk(b"prVt", PLANTED.encode())  # an ancillary chunk nobody registered
    tail = b"\x00" + PLANTED.encode() + b"\n"
    return data[:iend] + private + data[iend:] + tail


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg_with_patient(width: int = 96, height: int = 96, seed: int = 7) -> bytes:
    """A valid JPEG whose EXIF, XMP, IPTC, ICC, comment and tail carry :data:`PLANTED`."""
    buf = io.BytesIO()
    Image.fromarray(_pixels(width, height, seed), "L").save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    xmp = (
        b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><dc:creator>"
        + PLANTED.encode()
        + b"</dc:creator></x:xmpmeta>"
    )
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x1c\x1c\x02\x50\x00\x17" + (
        PLANTED.encode()
    )
    icc = b"ICC_PROFILE\x00\x01\x01desc" + PLANTED.encode()
    segments = (
        _segment(0xE1, b"Exif\x00\x00" + _exif())
        + _segment(0xE1, xmp)
        + _segment(0xED, iptc)
        + _segment(0xE2, icc)
        + _segment(0xFE, PLANTED.encode())
    )
    return data[:2] + segments + data[2:] + b"trailing " + PLANTED.encode()


def pixels(data: bytes) -> np.ndarray:
    """The decoded pixels, to compare a clean copy with its upload."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("L"))


def png_chunks(data: bytes) -> list[str]:
    """The chunk types of a PNG, in order."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4 : pos + 8].decode("latin-1"))
        pos += 12 + length
    return out


def jpeg_markers(data: bytes) -> list[int]:
    """The segment markers of a JPEG before its first scan (APPn are 0xE0-0xEF, COM 0xFE)."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        out.append(marker)
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return out
