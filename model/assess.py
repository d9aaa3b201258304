"""Is this image something the model may read? The worker's checks on decoded pixels.

The model was trained on greyscale frontal chest radiographs of children. Anything else gets
a label all the same unless someone stops it, so before scoring, the worker ends such a job
``not_assessable`` with a reason a clinician can act on, never a label:

- a colour image (a photograph, a screenshot, a coloured overlay): radiographs are grey;
- a blank or nearly uniform image (a failed export, a wrong window/level);
- an image far from the training X-rays (:mod:`model.ood`, thresholds in the model card).

The API checks what it can see without decoding pixels (DICOM modality, body part and view,
the aspect ratio: pneumonia_api/assessable.py). The pixel checks run on the decode pool,
beside :func:`model.preprocess.prepare`, which stays the one pixel preparation.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from model import preprocess

COLOUR_MEAN_CHROMA = 12.0  # grey JPEGs saved as RGB stay below 3 (chroma subsampling noise)
COLOUR_PIXEL_CHROMA = 40.0
COLOUR_PIXEL_SHARE = 0.05
# Grey-level spread of the model input below which there is nothing to read. The training
# X-rays' lowest is 25 at 32 px (1st percentile 32); fine noise averaged down by the resize
# (a full-resolution noise image) lands near 6, and is refused here too.
BLANK_STD = 10.0

COLOUR = (
    "This is a colour image, not a radiograph: the model reads only greyscale chest X-rays. "
    "Upload the X-ray itself, exported from the PACS or the modality (not a photo or a "
    "screenshot)."
)
BLANK = (
    "The image is blank or almost uniform: there is nothing for the model to read. Check the "
    "export (window/level, the right series) and upload the X-ray again."
)
OUT_OF_DISTRIBUTION = (
    "This image does not look like the frontal chest X-rays of children the model was trained "
    "on (it may be another body part, a lateral view, a photograph or a very unusual film): "
    "no result is given. A clinician should read it."
)


class NotAssessable(Exception):
    """The image must not be labelled; ``str(exc)`` is the reason shown to the clinician."""


def is_colour(data: bytes) -> bool:
    """True when the image holds real colour (not grey stored as RGB, as many X-rays are)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                return False
            if img.format == "JPEG":
                img.draft("RGB", (128, 128))  # a cheap reduced decode is enough to see colour
            img.thumbnail((128, 128))
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    except Exception:  # undecodable images are for preprocess to report
        return False
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return bool(
        chroma.mean() > COLOUR_MEAN_CHROMA
        or (chroma > COLOUR_PIXEL_CHROMA).mean() > COLOUR_PIXEL_SHARE
    )


def is_blank(pixels: np.ndarray) -> bool:
    """True for an image with (almost) nothing in it, measured on the model input."""
    return float(np.asarray(pixels)[..., 0].std()) < BLANK_STD


def prepare_checked(data: bytes, size: int) -> np.ndarray:
    """:func:`model.preprocess.prepare`, refusing colour and blank images (NotAssessable)."""
    if is_colour(data):
        raise NotAssessable(COLOUR)
    pixels = preprocess.prepare(data, size)
    if is_blank(pixels):
        raise NotAssessable(BLANK)
    return pixels
