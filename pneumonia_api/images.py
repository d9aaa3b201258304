"""Upload validation: what an accepted image is, decided by content, never by file name.

Accepted: PNG, JPEG and DICOM. A DICOM is reduced to its pixels here (modality and VOI LUTs
applied, MONOCHROME1 inverted) and re-encoded as PNG; the dataset with every header field,
patient identifiers included, is dropped before anything is stored or logged.

Everything that can go wrong with a file maps to one :class:`~pneumonia_api.errors.ApiError`
with a stable code, so hostile or broken files get a 4xx that says what to do, never a 500.
Sizes are checked from the headers *before* pixels are decoded, which is what stops
decompression bombs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

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
    """What is stored: the image bytes (DICOM already converted) and their facts."""

    data: bytes
    media_type: str
    width: int
    height: int
    sha256: str
    original_format: str


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
                if kind == "jpeg":
                    # Decode at 1/8 scale in the DCT domain: every byte is still read, so a
                    # truncated or corrupt stream still fails, at a quarter of the cost.
                    img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
                img.load()  # decodes the whole stream: truncated or corrupt data fails here
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
    return AcceptedImage(data, media, width, height, hashlib.sha256(data).hexdigest(), kind)


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
        arr = ds.pixel_array
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
    return AcceptedImage(png, "image/png", cols, rows, hashlib.sha256(png).hexdigest(), "dicom")
