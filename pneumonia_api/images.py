"""Upload validation: what an accepted image is, decided by content, never by file name.

Accepted: PNG, JPEG and DICOM. A DICOM is reduced to its pixels here (modality and VOI LUTs
applied, MONOCHROME1 inverted) and re-encoded as PNG; the dataset with every header field,
patient identifiers included, is dropped before anything is stored or logged.

Everything that can go wrong with a file maps to one :class:`~pneumonia_api.errors.ApiError`
with a stable code, so hostile or broken files get a 4xx that says what to do, never a 500.
Sizes are checked from the headers *before* pixels are decoded, which is what stops
decompression bombs.

PNG and JPEG pixels are *not* decoded here: the inference worker decodes every image anyway,
and decoding it twice made validation half of the API's CPU per upload (4-6 ms of a ~300 kB
X-ray on this hardware: PERFORMANCE.md). Instead the file's structure is checked, which is
what catches the damage real files have (an interrupted export or copy cuts the tail off):

- PNG: every chunk is walked and its CRC-32 verified, IHDR first, IEND last. The CRC covers
  the compressed pixels, so a cut *or* a flipped byte anywhere is refused.
- JPEG: the markers are walked up to the first scan, and the end-of-image marker must follow
  it (0xFFD9 cannot occur inside entropy-coded data). JPEG has no checksum: a byte flipped
  inside the compressed pixels is not detectable by any check short of decoding, and libjpeg
  decodes most of those as noise anyway.

What still fails to decode in the worker ends that job ``failed`` at once with a message that
says to export the image again (model.inference), the same outcome one step later.

What is stored and served is the clean copy (:mod:`pneumonia_api.metadata`): PNG text and EXIF
chunks, JPEG APPn and comment segments and bytes after the image's end are dropped, pixels
untouched.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import struct
import unicodedata
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import assessable, metadata
from .errors import ApiError

log = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC_OFFSET = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    min_side: int


@dataclass
class AcceptedImage:
    """What is stored: the clean copy of the image (metadata removed, DICOM converted) and
    its facts; ``sha256`` is the upload's, for the content cache only."""

    data: bytes
    media_type: str
    width: int
    height: int
    sha256: str
    original_format: str
    # Why the model must not read it, read from the DICOM header before it is dropped.
    not_assessable: str | None = None


def sniff(data: bytes) -> str | None:
    """The format from the first bytes: 'png', 'jpeg', 'dicom' or None."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return "dicom"
    return None


def safe_filename(name: str | None) -> str:
    """A display name: no directories, no control characters, at most 200 characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name).strip().strip(".")
    return name[:200] or "upload"


def validate(data: bytes, filename: str, limits: Limits) -> AcceptedImage:
    """Check one uploaded file and return what to store, or raise ApiError (4xx)."""
    if not data:
        raise ApiError(400, "empty_file", f"{filename} is empty. Choose the X-ray file again.")
    kind = sniff(data)
    if kind is None:
        raise ApiError(
            415,
            "unsupported_type",
            f"{filename} is not a PNG, JPEG or DICOM image. Export the X-ray in "
            "one of those formats and upload it again.",
        )
    if kind == "dicom":
        return _from_dicom(data, filename, limits)
    return _from_raster(data, filename, kind, limits)


def _check_size(width: int, height: int, filename: str, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise ApiError(
            400,
            "too_many_pixels",
            f"{filename} is {width} x {height} pixels, more than the "
            f"{limits.max_pixels:,} allowed. Export it at a lower resolution.",
        )
    if min(width, height) < limits.min_side:
        raise ApiError(
            400,
            "image_too_small",
            f"{filename} is only {width} x {height} pixels; a chest X-ray needs at "
            f"least {limits.min_side} pixels a side.",
        )


def _from_raster(data: bytes, filename: str, kind: str, limits: Limits) -> AcceptedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind.upper()]) as img:
                width, height = img.size
                _check_size(width, height, filename, limits)
                if getattr(img, "n_frames", 1) > 1:
                    raise ApiError(
                        400,
                        "multi_frame",
                        f"{filename} holds several frames (animated or multi-"
                        "picture). Upload one X-ray per file.",
                    )
                if not (_png_complete(data) if kind == "png" else _jpeg_complete(data)):
                    raise ValueError("incomplete")
                clean = metadata.clean(data, kind)
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(
            400,
            "too_many_pixels",
            f"{filename} declares more pixels than allowed. Export it at a lower resolution.",
        ) from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, EOFError...
        log.info("rejected %s image: %s", kind, type(exc).__name__)
        raise ApiError(
            400,
            "truncated_image",
            f"{filename} looks like a {kind.upper()} but could not be read "
            "completely (truncated or corrupt). Export it again and re-upload.",
        ) from None
    media = "image/png" if kind == "png" else "image/jpeg"
    # The upload's hash keys the content cache only; what is stored is the clean copy.
    return AcceptedImage(clean, media, width, height, hashlib.sha256(data).hexdigest(), kind)


def _png_complete(data: bytes) -> bool:
    """Every chunk whole with a correct CRC-32, from IHDR first to IEND."""
    pos, first, end = len(PNG_MAGIC), True, len(data)
    while pos + 12 <= end:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        stop = pos + 12 + length
        if stop > end or (first and kind != b"IHDR"):
            return False
        (crc,) = struct.unpack_from(">I", data, stop - 4)
        if zlib.crc32(memoryview(data)[pos + 4 : stop - 4]) != crc:
            return False
        if kind == b"IEND":
            return True
        pos, first = stop, False
    return False


def _jpeg_complete(data: bytes) -> bool:
    """The header segments are whole up to the first scan (SOS), and the end-of-image marker
    comes after it: what an interrupted copy or export loses first."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > end:
            return False
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return data.rfind(b"\xff\xd9") >= pos + 2 + length  # searched from the end
        pos += 2 + length
    return False


def _from_dicom(data: bytes, filename: str, limits: Limits) -> AcceptedImage:
    """DICOM to an 8-bit PNG of its pixels; the headers go no further than this function."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    invalid = ApiError(
        400,
        "invalid_dicom",
        f"{filename} is a DICOM file whose image could not be read (truncated, "
        "compressed in an unsupported way, or without pixel data). Export it "
        "uncompressed and upload it again.",
    )
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        if "PixelData" in ds:  # sizes first: a bomb must not reach pixel decoding
            _check_size(cols, rows, filename, limits)
        if "PixelData" not in ds or not rows or not cols:
            raise invalid
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ApiError(
                400,
                "multi_frame",
                f"{filename} is a multi-frame DICOM. Upload a single-frame radiograph.",
            )
        header_reason = assessable.dicom_reason(
            ds.get("Modality"), ds.get("BodyPartExamined"), ds.get("ViewPosition")
        )
        arr = ds.pixel_array
        if arr.ndim == 3 and arr.shape[-1] == 3 and not header_reason:
            header_reason = assessable.COLOUR_DICOM
        if arr.ndim == 3 and arr.shape[-1] == 3:  # colour: take luminance
            arr = arr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        elif arr.ndim != 2:
            raise invalid
        else:
            arr = apply_modality_lut(arr, ds)
            arr = apply_voi_lut(arr, ds, index=0)
        arr = np.asarray(arr, dtype=np.float64)
        if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            arr = arr.max() - arr
    except ApiError:
        raise
    except Exception as exc:
        log.info("rejected dicom: %s", type(exc).__name__)  # never the dataset or its values
        raise invalid from None
    finally:
        ds = None  # drop the headers as early as possible
    lo, hi = float(np.min(arr)), float(np.max(arr))
    scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    out = io.BytesIO()
    Image.fromarray(scaled.round().astype(np.uint8), mode="L").save(out, format="PNG")
    png = out.getvalue()
    return AcceptedImage(
        png, "image/png", cols, rows, hashlib.sha256(png).hexdigest(), "dicom", header_reason
    )
