"""The result in words that fit its number, for the result card and the result page.

The probability the worker serves is calibrated (model/calibration.py): 30 % means about 3
in 10 such films show pneumonia, and the threshold is on the same scale. A bare "Normal"
beside a 30 % chance, or "Pneumonia" beside 35 %, would mislead, so the sentence says what
the number means: likely, unlikely, or below (above) the threshold but worth a look.
"""

from __future__ import annotations

# Below the threshold, a calibrated chance at or above this is said to be not negligible.
NOTABLE = 0.15


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %" if value >= 0.01 else "under 1 %"


def reading(label: str | None, probability: float | None, threshold: float | None) -> str:
    """One sentence for a finished prediction; empty when there is nothing to say."""
    if probability is None or label is None:
        return ""
    p = float(probability)
    thr = _pct(float(threshold if threshold is not None else 0.5))
    if label == "Pneumonia":
        if p >= 0.5:
            return f"Pneumonia is likely: about {_pct(p)} of films like this one show it."
        return (
            f"Flagged for a closer look: the chance of pneumonia is {_pct(p)}, less than even, "
            f"but above the threshold ({thr}) set so that few pneumonias are missed."
        )
    if p >= NOTABLE:
        return (
            f"Below the threshold ({thr}), but a {_pct(p)} chance of pneumonia is not "
            "negligible: read the film with that in mind."
        )
    return f"Pneumonia is unlikely: about {_pct(p)} of films like this one show it."
