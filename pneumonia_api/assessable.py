"""Uploads the model must not read, told from what the API sees before any pixel is decoded.

A DICOM's header says what the image is (modality, body part, view) and is dropped as soon as
the pixels are out (pneumonia_api/images.py), so it is read here or never; the image's shape
is known from its structure. Such an upload is accepted and kept like any other (nothing
accepted is lost), but ends at once with status ``not_assessable`` and one of these reasons,
never a label. The worker adds the checks that need pixels (model/assess.py).

Only the coded values are echoed back (modality, body part, view: never a name, date or id).
"""

from __future__ import annotations

import re

RADIOGRAPHY = ("CR", "DX")  # computed and digital radiography; "DR" is a common vendor alias
MODALITY_ALIASES = ("DR",)
CHEST = ("CHEST", "THORAX", "LUNG", "PORT CHEST", "CHEST_LAT")
LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD")
COLOUR_DICOM = (
    "This DICOM holds a colour image, not a radiograph: the model reads only greyscale chest "
    "X-rays. No result is given; a clinician should read it."
)
_CODE = re.compile(r"[^A-Z0-9 _-]")


def _code(value) -> str:
    """A coded header value, upper-case, sanitised and short (it is shown to the clinician)."""
    return _CODE.sub("", str(value or "").upper()).strip()[:16]


def dicom_reason(modality, body_part, view) -> str | None:
    """Why a DICOM is not a frontal chest radiograph, from its header; None when it may be.

    Missing values are not held against an image (many exports leave body part or view
    empty); a value that is present and wrong is.
    """
    modality, body_part, view = _code(modality), _code(body_part), _code(view)
    if modality and modality not in RADIOGRAPHY + MODALITY_ALIASES:
        return (
            f"The DICOM modality is {modality}, not a radiograph (CR or DX): the model reads "
            "only chest X-rays. No result is given; a clinician should read it."
        )
    if body_part and not any(part in body_part for part in ("CHEST", "THORAX", "LUNG")):
        return (
            f"The DICOM says the body part is {body_part}, not the chest: the model reads only "
            "chest X-rays. No result is given; if this is a chest film, correct the header."
        )
    if view in LATERAL_VIEWS:
        return (
            f"The DICOM view is {view} (lateral): the model reads only frontal (PA/AP) chest "
            "films. Upload the frontal view of the same study."
        )
    return None


def shape_reason(width: int, height: int, max_aspect: float) -> str | None:
    """Why an image's shape is not that of a chest film (far too long or wide), or None."""
    ratio = max(width, height) / max(1, min(width, height))
    if ratio <= max_aspect:
        return None
    return (
        f"The image is {width} x {height} pixels (aspect ratio {ratio:.1f} : 1), far from the "
        "shape of a chest film: it may be cropped, a panorama or another kind of image. Upload "
        "the whole radiograph."
    )
