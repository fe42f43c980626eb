"""Figures for the verdict model: across-image AUC, finding accuracy and invariance to re-storing.

Shared by the synthetic held-out evidence (:mod:`.train`) and the one-off real-image evaluation
(``qcgate.bench.verdict_eval``). Severe: severity >= 0.6; clean/mild: severity <= 0.2 (issue 11).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.stats import spearmanr

__all__ = ["BENIGN", "auc", "benign_variants", "finding_accuracy", "srcc"]


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties half (Mann-Whitney)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def srcc(a: Sequence[float], b: Sequence[float]) -> float:
    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def finding_accuracy(true_kinds: Sequence[str], severities: Sequence[dict[str, float]]) -> tuple[float, dict]:
    """Share of copies whose most severe finding is the applied kind, and the confusion counts."""
    confusion: dict[str, dict[str, int]] = {}
    hits = 0
    for kind, row in zip(true_kinds, severities, strict=True):
        predicted = max(row, key=lambda name: row[name])
        confusion.setdefault(kind, {}).setdefault(predicted, 0)
        confusion[kind][predicted] += 1
        hits += predicted == kind
    return (hits / len(true_kinds) if true_kinds else float("nan")), confusion


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    return tuple(
        slice(
            int(np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))[0]),
            int(np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))[-1]) + 1,
        )
        for ax in range(mask.ndim)
    )


BENIGN: tuple[str, ...] = (
    "scale_1e3",
    "scale_1e-2",
    "quantise_8bit",
    "quantise_12bit",
    "flip_rows",
    "flip_cols",
    "transpose",
    "crop_to_anatomy",
    "zero_air",
    "pad_zero_air",
    "skull_strip_like",
)


def benign_variants(volume: np.ndarray, foreground: np.ndarray) -> dict[str, np.ndarray]:
    """Each benign re-storing of a (S, R, C) magnitude volume, in-plane axes last."""
    x = np.asarray(volume, dtype=np.float64)
    top = x.max()
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    dilated = ndimage.binary_dilation(foreground, in_plane, iterations=3)
    box = _bbox(foreground)
    pad = max(4, x.shape[-1] // 5)
    return {
        "scale_1e3": x * 1e3,
        "scale_1e-2": x * 1e-2,
        "quantise_8bit": np.round(x / top * 255),
        "quantise_12bit": np.round(x / top * 4095),
        "flip_rows": x[..., ::-1, :],
        "flip_cols": x[..., ::-1],
        "transpose": np.swapaxes(x, -1, -2),
        "crop_to_anatomy": x[(slice(None), *box[1:])],
        "zero_air": np.where(dilated, x, 0.0),
        "pad_zero_air": np.pad(x, ((0, 0), (pad, pad // 2), (pad // 3, pad))),
        "skull_strip_like": np.where(ndimage.binary_erosion(foreground, in_plane, iterations=2), x, 0.0),
    }
