"""Pixel preparation: the one place an X-ray becomes a model input.

Training (model.training.data) and serving (model.inference) both call :func:`prepare`, so
the tensor a model sees in production is, bit for bit, the tensor it learnt from. Intensity
scaling is *not* done here: each model carries its own ``Rescaling`` layer, so a model file
is self-describing and serving cannot apply the wrong normalisation.

Decisions, and why:
- Greyscale first, then three equal channels: the Kermany images are grey (some saved as RGB)
  and ResNet50 expects three channels.
- The whole image is resized to a square, aspect ratio not kept: that is how the training
  set (``chest_xray_224``) was made, so serving does the same rather than cropping.
- Bilinear resampling with Pillow's antialiasing: downscaling a 2900 px film to 224 px without
  it aliases the rib edges.
- A large JPEG is decoded at reduced scale (libjpeg's DCT scaling, 1/2 to 1/8) straight to
  greyscale, never below twice the model's input size: it is then antialiased down as before.
  That makes decoding a full-resolution upload about 40 % cheaper; the model input differs
  from a full decode's by about 0.2 grey levels on average at 224 px and 1 at 64 px (JPEG
  re-encoding of the training set alone moves pixels more: tests/model/test_preprocess.py).
  Training images (224 px) are never reduced for inputs above 56 px: they are unchanged.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

RESAMPLE = Image.Resampling.BILINEAR


class PreprocessError(ValueError):
    """The bytes cannot be turned into a model input (corrupt or unsupported image)."""


def decode(data: bytes, min_side: int | None = None) -> Image.Image:
    """Decode PNG/JPEG bytes (as stored by the API) into an 8-bit greyscale image.

    ``min_side``: a JPEG may be decoded at a reduced scale that keeps both sides at least
    this long (a no-op for other formats).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            if min_side and img.format == "JPEG":
                img.draft("L", (min_side, min_side))
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                lo, hi = float(arr.min()), float(arr.max())
                scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
                return Image.fromarray(scaled.round().astype(np.uint8), mode="L")
            return img.convert("L")
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, EOFError, struct.error...
        raise PreprocessError(f"cannot decode image: {type(exc).__name__}") from exc


def to_array(img: Image.Image, size: int) -> np.ndarray:
    """Resize a greyscale image to ``size`` x ``size`` and stack it into 3 float32 channels.

    Values stay in 0..255; the model's own Rescaling layer normalises them.
    """
    grey = img.convert("L").resize((size, size), RESAMPLE)
    arr = np.asarray(grey, dtype=np.float32)
    return np.repeat(arr[:, :, None], 3, axis=2)


def prepare(data: bytes, size: int) -> np.ndarray:
    """Bytes of a PNG/JPEG to the (size, size, 3) float32 array the model takes."""
    return to_array(decode(data, min_side=2 * size), size)
