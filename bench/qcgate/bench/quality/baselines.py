"""No-reference baselines that users know, scored beside qcgate's metrics: BRISQUE (NIQE: none).

BRISQUE [Mittal2012]_ comes from the ``brisque`` package (Apache-2.0), the only BRISQUE on the
package index here that ships its trained model and needs neither torchvision nor a download. Its
``BRISQUE.score`` fails on NumPy 2 (it converts 1-element arrays with ``float()``), so
:func:`brisque_score` does what ``score`` does, feature for feature, and flattens the features
itself. BRISQUE was trained on natural photographs (LIVE); it sees an MR slice as a grey photograph.
Each volume is scored on up to three slices from its central half, each scaled to 0..1 by the
volume's 99.5th percentile (so a few hot pixels do not darken everything), and averaged. Lower is
better (0 is pristine, about 100 very distorted).

NIQE could not be had: scikit-video (the NIQE with the authors' pristine model) was last released
in 2018 and fails on current SciPy (``scipy.misc.imresize`` is gone); ``niqe`` 0.1.1 ships no model
parameters; pyiqa is licensed for non-commercial use only; piq needs torchvision; OpenCV's quality
module has BRISQUE only, and its model files are not in the wheel. docs/quality-benchmark.md says more.

.. [Mittal2012] Mittal A, Moorthy AK, Bovik AC, *No-reference image quality assessment in the spatial
   domain*, IEEE TIP 21(12):4695-4708, 2012.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import Any

import numpy as np

__all__ = ["Baseline", "available_baselines", "brisque_score"]

_SLICES = 3
_PERCENTILE = 99.5


@dataclass(frozen=True)
class Baseline:
    """A no-reference metric outside the service, scored on each copy's volume."""

    name: str
    higher_is_better: bool
    score: Callable[[np.ndarray], float]


@cache
def _brisque_model() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # it imports scipy.ndimage.filters
        from brisque import BRISQUE

    return BRISQUE(url=False)


def _scored_slices(volume: np.ndarray) -> np.ndarray:
    """Up to three slices from the central half of ``volume``, scaled to 0..1."""
    count = volume.shape[0]
    indices = np.unique(
        np.linspace(count // 4, count - 1 - count // 4, min(_SLICES, count)).round().astype(int)
    )
    peak = float(np.percentile(volume, _PERCENTILE)) or 1.0
    return np.clip(volume[indices] / peak, 0.0, 1.0)


def brisque_score(volume: np.ndarray) -> float:
    """Mean BRISQUE of a (S, R, C) volume's scored slices; lower is better."""
    import cv2

    model = _brisque_model()
    scores = []
    for image in _scored_slices(volume).astype(np.float64):
        half = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # flat regions: 0/0 in its moment fits
            features = [
                model.calculate_brisque_features(x, kernel_size=7, sigma=7 / 6) for x in (image, half)
            ]
            flat = [float(np.ravel(value)[0]) for value in chain.from_iterable(features)]
            scores.append(float(model.calculate_image_quality_score(flat)))
    return float(np.mean(scores))


def available_baselines() -> list[Baseline]:
    """The baselines whose packages are installed; a missing one is named on stderr and left out."""
    try:
        _brisque_model()
    except ImportError as exc:
        print(f"quality: BRISQUE left out, its package is missing ({exc})", file=sys.stderr)  # noqa: T201
        return []
    return [Baseline("brisque", False, brisque_score)]
