"""Which instances of a series an image-quality verdict can judge, decided from the header alone.

Derived maps (ADC, FA, phase, MIP, subtraction), localizers and high-b diffusion volumes are not images
a no-reference quality metric can judge: their contrast is computed, sparse or noise-dominated by
design, so scoring them would flag good series. They are recognised from ImageType,
SeriesDescription and the diffusion b-value, and the series is reported ``not_assessable`` with the
reason instead of being flagged. A site adjusts the rules (:class:`~qcgate.core.settings.SeriesFilter`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydicom import Dataset

from qcgate.core.settings import SeriesFilter

__all__ = ["assessable_instances"]


def _image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType") or []
    values = [value] if isinstance(value, str) else list(value)
    return [str(v).strip().upper() for v in values]


def _b_value(ds: Dataset) -> float | None:
    """The diffusion b-value of a classic instance, or of the first frame of an Enhanced one."""
    value = ds.get("DiffusionBValue")
    if value is None:
        for group in ds.get("PerFrameFunctionalGroupsSequence") or ():
            for item in group.get("MRDiffusionSequence") or ():
                value = item.get("DiffusionBValue")
                break
            break
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _excluded_by(ds: Dataset, rules: SeriesFilter) -> str | None:
    """Why this instance cannot be judged, or None."""
    description = str(ds.get("SeriesDescription") or "")
    if any(re.search(pattern, description, re.IGNORECASE) for pattern in rules.include_descriptions):
        return None
    image_type = _image_type(ds)
    for marker in rules.exclude_image_types:
        if marker.upper() in image_type[2:]:  # values 3 and on say what the image is (PS3.3 C.7.6.1.1.2)
            return f"ImageType value {marker.upper()} marks an image no quality metric can judge"
    for pattern in rules.exclude_descriptions:
        if re.search(pattern, description, re.IGNORECASE):
            return f'SeriesDescription "{description}" matches the excluded pattern "{pattern}"'
    b_value = _b_value(ds)
    if b_value is not None and b_value > rules.max_b_value:
        return f"a diffusion-weighted image at b={b_value:g} s/mm2 (above {rules.max_b_value:g})"
    return None


def assessable_instances(datasets: Sequence[Dataset], rules: SeriesFilter) -> tuple[list[Dataset], list[str]]:
    """The instances the verdict can judge, and why the others were left out (one reason per kind)."""
    kept: list[Dataset] = []
    reasons: list[str] = []
    for ds in datasets:
        reason = _excluded_by(ds, rules)
        if reason is None:
            kept.append(ds)
        elif reason not in reasons:
            reasons.append(reason)
    return kept, reasons
