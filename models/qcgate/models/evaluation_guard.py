"""Keep the real evaluation images out of training: the check every training data loader calls.

qcgate's learned metrics train on synthetic MR only; the few real MR images that installed packages
ship (``bench/quality/real_images.py``) are kept to judge them. A metric that saw one of them, or a
corrupted copy of one, in training would be judged on its own training data, and no number in the
quality benchmark would mean anything. Three lines of defence keep them apart:

1. **Imports** (``tests/test_training_isolation.py``): no module under ``models/`` imports the
   benchmark (``bench``) or the packages' data modules (``pydicom.data``, ``dipy.data``,
   ``nibabel.testing``, pydicom-data's ``data_store``).
2. **Provenance**: everything the benchmark hands out is marked ``{"kind": "real-evaluation"}``;
   :func:`assert_not_evaluation_data` refuses a sample whose provenance says so.
3. **Fingerprints**, for data that lost its provenance on the way (a corrupted copy is a new
   array): every 2D slice of a sample is compared with the fingerprints of every evaluation slice
   in ``evaluation_fingerprints.json`` beside this module. The registry lives here, not in
   ``bench/``, so the training side can import it without importing, or even having, the real
   data; ``python -m qcgate.bench.quality.fingerprints`` writes it.

A fingerprint is a 48x48 thumbnail of the slice, high-pass filtered at that scale and standardised:
the thumbnail averages away pixel-level noise and k-space sampling patterns, the high-pass removes
smooth shading (bias fields, overall scale) and keeps the layout of the anatomy, which is what
identifies a scan. Two fingerprints are compared by their Pearson correlation, over the four flips
of the sample (an augmentation a loader might apply first). One corruption moves the anatomy
itself: wrap-around (a phase-encode field of view smaller than the object) folds the object's ends
onto its middle and blanks the rest. So the registry also holds each slice folded, as the
simulator folds it, at fields of view from 55% to 95% of the object's extent along phase encoding,
derived from the stored thumbnail when the registry is loaded.

Heavy degradation erases identity faster in a 64-pixel crop than in a 512-pixel scan, and a brain
slice resembles other brains more than a shoulder resembles anything, so each image has its own
threshold, calibrated halfway between the lowest similarity of its corrupted copies (every
corruption type up to severity 1, random combinations) and the highest similarity of any synthetic
training slice to it. The registry records that calibration; ``docs/quality-benchmark.md`` quotes it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, shift, zoom

__all__ = [
    "EVALUATION_KIND",
    "FINGERPRINT_SIZE",
    "FOLD_FRACTIONS",
    "REGISTRY_PATH",
    "EvaluationDataLeak",
    "FingerprintRegistry",
    "assert_not_evaluation_data",
    "fingerprint",
    "fold",
    "load_registry",
    "registry_document",
    "registry_entry",
    "registry_from_document",
    "similarities",
    "slices_of",
    "thumbnail",
]

EVALUATION_KIND = "real-evaluation"
REGISTRY_PATH = Path(__file__).with_name("evaluation_fingerprints.json")
FINGERPRINT_SIZE = 48  # thumbnail side, pixels
FOLD_FRACTIONS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # field of view / object extent
_HIGH_PASS_SIGMA = 2.0  # thumbnail pixels: shading smoother than about a tenth of the field of view goes
_MIN_SIDE = 8  # slices smaller than this show no recognisable anatomy and match nothing


class EvaluationDataLeak(ValueError):
    """A training sample is, or is derived from, a real evaluation image."""


@dataclass(frozen=True)
class FingerprintRegistry:
    """One row per evaluation slice and per folded variant of it: what a sample is compared with."""

    fingerprints: np.ndarray  # (N, 48*48) float32, each row standardised
    thresholds: np.ndarray  # (N,) float32, the row's image's threshold
    labels: tuple[str, ...]  # "<image>[<slice>]", with " folded to 70%" for folded variants
    images: tuple[str, ...]  # the evaluation image of each row


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The anti-aliased 48x48 magnitude thumbnail of one 2D slice, float64."""
    if image.ndim != 2:
        raise ValueError(f'Argument "image" must be 2D, got shape {image.shape}.')
    magnitude = np.abs(image).astype(np.float64)
    factors = [FINGERPRINT_SIZE / n for n in magnitude.shape]
    anti_aliased = gaussian_filter(magnitude, [max(0.5 / f - 0.5, 0.0) for f in factors])
    return zoom(anti_aliased, factors, order=1, grid_mode=True, mode="nearest")[
        :FINGERPRINT_SIZE, :FINGERPRINT_SIZE
    ]


def fingerprint(thumb: np.ndarray) -> np.ndarray:
    """The standardised high-pass of a thumbnail, flattened: (48*48,) float32.

    A thumbnail without structure gets the zero vector, uncorrelated with everything.
    """
    detail = thumb - gaussian_filter(thumb, _HIGH_PASS_SIGMA, mode="nearest")
    spread = float(detail.std())
    if not np.isfinite(spread) or spread <= 1e-9 * max(float(np.abs(thumb).max()), 1e-30):
        return np.zeros(FINGERPRINT_SIZE**2, dtype=np.float32)
    return ((detail - detail.mean()) / spread).ravel().astype(np.float32)


def fold(thumb: np.ndarray, axis: int, first: float, extent: float, fraction: float) -> np.ndarray:
    """``thumb`` wrapped along ``axis`` into a field of view of ``fraction`` of the object's extent.

    As :func:`qcgate.models.corruption.corrupt` wraps: the field of view (``fraction * extent`` thumbnail
    pixels) is centred on the object (which starts at ``first``), every part of the object lands
    in it at a multiple of the period, and outside it nothing was imaged.
    """
    period = fraction * extent
    start = first + (extent - period) / 2.0
    moved = np.moveaxis(thumb, axis, 0)
    folded = np.zeros_like(moved)
    for k in range(-int(np.ceil(FINGERPRINT_SIZE / period)) - 1, int(np.ceil(FINGERPRINT_SIZE / period)) + 2):
        folded += shift(moved, (-k * period, 0.0), order=1, mode="constant")  # row i gets row i + k*period
    rows = np.arange(FINGERPRINT_SIZE)
    folded[(rows < start) | (rows >= start + period)] = 0.0
    return np.moveaxis(folded, 0, axis)


def slices_of(array: np.ndarray) -> np.ndarray:
    """The 2D slices of a sample: (1, R, C) for a slice, (S, R, C) for a volume, (B*S, R, C) for a batch."""
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f'Argument "array" must have at least two dimensions, got shape {array.shape}.')
    return array.reshape(-1, *array.shape[-2:])


def similarities(array: np.ndarray, registry: FingerprintRegistry | None = None) -> np.ndarray:
    """(N,) the highest correlation of any slice of ``array``, flipped or not, with each registry row."""
    registry = registry or load_registry()
    best = np.full(len(registry.labels), -1.0, dtype=np.float32)
    for image in slices_of(array):
        if min(image.shape) < _MIN_SIDE:
            continue
        finite = np.nan_to_num(np.abs(image), nan=0.0, posinf=0.0, neginf=0.0)  # a NaN must not hide a slice
        square = fingerprint(thumbnail(finite)).reshape(FINGERPRINT_SIZE, FINGERPRINT_SIZE)
        if square.any():
            flips = np.stack([square, square[::-1], square[:, ::-1], square[::-1, ::-1]]).reshape(4, -1)
            correlations = flips @ registry.fingerprints.T / square.size  # (4, N)
            best = np.maximum(best, correlations.max(axis=0))
    return best


def assert_not_evaluation_data(
    array: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
    *,
    registry: FingerprintRegistry | None = None,
) -> None:
    """Raise :class:`EvaluationDataLeak` if ``array`` is, or derives from, a real evaluation image.

    Training data loaders call this on every sample (a 2D slice, a 3D volume, or a batch whose last
    two axes are in-plane) with the sample's provenance where they keep one. It costs about a
    millisecond per slice.
    """
    if provenance is not None and provenance.get("kind") == EVALUATION_KIND:
        raise EvaluationDataLeak(f"the provenance marks a real evaluation image: {dict(provenance)}")
    registry = registry or load_registry()
    margin = similarities(array, registry) - registry.thresholds
    worst = int(np.argmax(margin))
    if margin[worst] >= 0:
        similarity = float(margin[worst] + registry.thresholds[worst])
        raise EvaluationDataLeak(
            f"a slice matches the real evaluation slice {registry.labels[worst]} (similarity "
            f"{similarity:.3f} >= {float(registry.thresholds[worst]):.3f}); evaluation images and "
            "anything derived from them must never be trained on"
        )


def registry_entry(
    label: str, image: str, thumb: np.ndarray, fold_axis: int, first: float, extent: float, threshold: float
) -> dict[str, Any]:
    """One slice's JSON entry: its thumbnail as 8-bit (relative to its maximum), fold geometry, threshold."""
    peak = float(thumb.max())
    pixels = np.rint(thumb / peak * 255.0) if peak > 0 else np.zeros_like(thumb)
    return {
        "label": label,
        "image": image,
        "threshold": round(float(threshold), 4),
        "fold": {"axis": fold_axis, "first": round(first, 3), "extent": round(extent, 3)},
        "thumbnail": base64.b64encode(pixels.astype(np.uint8).tobytes()).decode("ascii"),
    }


def registry_document(entries: Sequence[Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    """The registry file's content: the fingerprint's parameters, the slice entries, and ``extra``."""
    return {"size": FINGERPRINT_SIZE, "high_pass_sigma": _HIGH_PASS_SIGMA, **extra, "slices": list(entries)}


def registry_from_document(document: Mapping[str, Any]) -> FingerprintRegistry:
    """The registry rows of a registry document: each slice, and each slice folded."""
    if document.get("size") != FINGERPRINT_SIZE or document.get("high_pass_sigma") != _HIGH_PASS_SIGMA:
        raise ValueError(
            "the registry was written for another fingerprint; "
            "rerun python -m qcgate.bench.quality.fingerprints"
        )
    rows, thresholds, labels, images = [], [], [], []
    for entry in document["slices"]:
        pixels = np.frombuffer(base64.b64decode(entry["thumbnail"]), dtype=np.uint8)
        thumb = pixels.reshape(FINGERPRINT_SIZE, FINGERPRINT_SIZE).astype(np.float64)
        geometry = entry["fold"]
        variants = [(entry["label"], thumb)] + [
            (
                f"{entry['label']} folded to {fraction:.0%}",
                fold(thumb, geometry["axis"], geometry["first"], geometry["extent"], fraction),
            )
            for fraction in FOLD_FRACTIONS
        ]
        for label, variant in variants:
            rows.append(fingerprint(variant))
            thresholds.append(entry["threshold"])
            labels.append(label)
            images.append(entry["image"])
    return FingerprintRegistry(
        np.stack(rows), np.asarray(thresholds, dtype=np.float32), tuple(labels), tuple(images)
    )


@lru_cache(maxsize=4)
def load_registry(path: Path = REGISTRY_PATH) -> FingerprintRegistry:
    """The registry shipped beside this module (read and unfolded once per process)."""
    return registry_from_document(json.loads(Path(path).read_text()))
