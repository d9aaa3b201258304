"""Out-of-distribution check: is this image like the chest X-rays the model learnt from?

A classifier gives every input a label, a knee radiograph or a holiday photo included. Before
a score is shown, the worker measures how far the prepared image lies from the training
images and, beyond a threshold, ends the job ``not_assessable`` instead of labelling it.

How: the image the model sees (``model.preprocess`` output) is reduced to a 16 x 16 grey
thumbnail; a principal component analysis of the training thumbnails gives the typical
layout of a paediatric frontal chest film (dark lungs either side of a bright mediastinum,
shoulders, diaphragm). The distance is the Mahalanobis distance within the first
``components`` components plus the reconstruction error outside them, each divided by its
mean on the training images (so an ordinary chest film scores about 2). The threshold is the
99.5th percentile on the *validation* patients (so about 1 in 200 genuine chest X-rays is
turned away; the card records the rate measured on the held-out test patients).

Why the image and not the network's penultimate features: the worker's fast runtimes (ONNX,
OpenVINO int8) export only the probability, and a feature output would change every export;
a 16 x 16 thumbnail is computed in microseconds beside them. What it catches and what it does
not (measured on generated images at every training run, in the card's ``ood.evaluation``):
noise, natural-photo-like scenes, knee-like limb radiographs, documents, inverted and rotated
chest films are caught; an adult chest film, a lateral chest view or a chest CT scout that
happens to look like a frontal film may pass, and so may subtle problems (wrong patient
side, heavy motion blur). It is a guard against the wrong kind of image, not a quality check.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMB = 16
COMPONENTS = 20
QUANTILE = 0.995
METHOD = (
    f"PCA of {THUMB}x{THUMB} grey thumbnails of the training images: Mahalanobis distance "
    f"in {COMPONENTS} components + reconstruction error, each / its training mean; "
    f"threshold = {QUANTILE:.1%} quantile on validation patients"
)


def thumbnails(pixels) -> np.ndarray:
    """(n, size, size, 3) model inputs (0..255) -> (n, THUMB * THUMB) floats in 0..1."""
    out = []
    for img in np.asarray(pixels):
        grey = Image.fromarray(np.asarray(img)[..., 0].clip(0, 255).astype(np.uint8), mode="L")
        out.append(np.asarray(grey.resize((THUMB, THUMB), Image.Resampling.BOX), np.float64))
    return np.stack(out).reshape(len(out), -1) / 255.0 if out else np.zeros((0, THUMB * THUMB))


def _parts(params: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centred = x - np.asarray(params["mean"])
    comps = np.asarray(params["components"])
    proj = centred @ comps.T
    mahal = (proj**2 / np.asarray(params["variances"])).sum(axis=1)
    resid = ((centred - proj @ comps) ** 2).sum(axis=1)
    return mahal, resid


def fit(train_pixels, val_pixels, components: int = COMPONENTS) -> dict:
    """The detector's parameters (JSON-able): fitted on train, thresholded on validation."""
    x = thumbnails(train_pixels)
    mean = x.mean(axis=0)
    _, sing, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(components, vt.shape[0])
    variances = (sing[:k] ** 2) / max(1, len(x) - 1) + 1e-8
    params = {
        "thumb": THUMB,
        "mean": mean,
        "components": vt[:k],
        "variances": variances,
        "scale": [1.0, 1.0],
    }
    mahal, resid = _parts(params, x)
    params["scale"] = [float(mahal.mean()), float(resid.mean())]
    params["threshold"] = float(np.quantile(score(params, val_pixels), QUANTILE))
    return jsonable(params)


def score(params: dict, pixels) -> np.ndarray:
    """Distance of each image from the training images (about 2 for a typical chest film)."""
    mahal, resid = _parts(params, thumbnails(pixels))
    return mahal / params["scale"][0] + resid / params["scale"][1]


def outside(params: dict | None, pixels) -> np.ndarray:
    """True for each image too far from the training distribution (never without params)."""
    if not params:
        return np.zeros(len(pixels), dtype=bool)
    return score(params, pixels) > params["threshold"]


def jsonable(params: dict) -> dict:
    """Numpy arrays as rounded lists, so the parameters travel inside the model card."""
    out = {}
    for key, value in params.items():
        if isinstance(value, np.ndarray):  # variances can be small: keep their digits
            out[key] = np.round(value, 10 if key == "variances" else 6).tolist()
        else:
            out[key] = value
    return out


# --- generated images that are not frontal chest X-rays, to measure the detector ---------------


def synthetic(kind: str, n: int, size: int, seed: int = 0, chest=None) -> np.ndarray:
    """``n`` generated (size, size, 3) model inputs of one ``kind`` (see :data:`KINDS`).

    ``chest``: real chest X-rays (model inputs) for the kinds derived from them.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    out = []
    for i in range(n):
        if kind == "noise":
            img = rng.uniform(0, 255, (size, size))
        elif kind == "photo":  # sky-to-ground gradient, smooth texture, a few bright objects
            img = 255 * (0.3 + 0.5 * (1 - yy) * rng.uniform(0.5, 1.0))
            coarse = rng.uniform(0, 1, (4, 4))
            tex = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size)))
            img = 0.6 * img + 0.4 * tex
            for _ in range(rng.integers(2, 6)):
                cy, cx, r = rng.uniform(0.2, 0.9), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
                img[((yy - cy) ** 2 + (xx - cx) ** 2) < r**2] = rng.uniform(0, 255)
        elif kind == "knee":  # soft-tissue column, two bright bone shafts meeting at a joint
            width = rng.uniform(0.25, 0.4)
            img = np.where(np.abs(xx - 0.5) < width, 90.0, 15.0)
            bone = np.abs(xx - 0.5) < width * 0.45
            gap = np.abs(yy - rng.uniform(0.4, 0.6)) < 0.03
            img = np.where(bone & ~gap, 220.0, img) + rng.normal(0, 6, (size, size))
        elif kind == "document":  # white page, dark lines of text
            img = np.full((size, size), 235.0)
            for row in range(2, size - 2, max(2, size // 10)):
                img[row, int(size * 0.1) : int(size * rng.uniform(0.5, 0.9))] = 30.0
        elif kind in ("inverted_chest", "rotated_chest"):
            base = np.asarray(chest[i % len(chest)])[..., 0].astype(np.float64)
            img = 255.0 - base if kind == "inverted_chest" else np.rot90(base)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        grey = np.clip(img, 0, 255).round()
        out.append(np.repeat(grey[..., None], 3, axis=2).astype(np.float32))
    return np.stack(out)


KINDS = ("noise", "photo", "knee", "document", "inverted_chest", "rotated_chest")


def evaluate(params: dict, test_pixels, size: int, n: int = 100, seed: int = 0) -> dict:
    """Share of held-out chest X-rays turned away, and share of each generated kind caught."""
    report = {"chest_xrays_rejected": float(outside(params, test_pixels).mean())}
    for kind in KINDS:
        images = synthetic(kind, n, size, seed, chest=test_pixels)
        report[f"{kind}_caught"] = float(outside(params, images).mean())
    return {k: round(v, 4) for k, v in report.items()}
