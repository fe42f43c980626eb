"""Calibration of a raw learned score onto the 0-100 quality scale, by isotonic regression.

The service reports each learned metric's series value and its ``quality``: the manifest's monotone
piecewise-linear map (:class:`qcgate.contract.manifest.Calibration`) of that value onto 0-100, higher is
better. The map is fitted on the synthetic validation set of the training run
(:mod:`qcgate.models.training.validation`): every copy's series value (scored as the service scores it)
against its quality label (:func:`qcgate.models.corruption.quality_label`, 0 useless .. 100 identical to
the clean image). Isotonic regression (pool-adjacent-violators, :func:`isotonic_fit`) gives the
best least-squares fit that only assumes the direction of the score; its blocks' means become the
knots, thinned to at most ``max_knots`` (the map between knots is linear, beyond them flat).

**Thresholds** are on that scale and the same for every learned metric (:data:`THRESHOLDS`):
*warn* below 60 and *fail* below 40. On the 2D validation images the median label of one
corruption at severity 0.2 is 66-90 by type, at 0.6 34-76 and at 1.0 21-61 (docs/training.md has
the table): warn catches noise from SNR 7.5 down, blur from 2.8 pixels FWHM and most other types
towards their strongest severities; fail catches noise from SNR 6, blur and wrap-around near their
strongest, and combinations of several moderate artifacts. They are a suggestion, not the service's
default: on real images the synthetic calibration is offset (docs/training.md#thresholds), so a site
sets them after scoring its own clean series.

``python -m qcgate.export.calibrated CHECKPOINT... --version V [--out DIR]`` exports checkpoints with the
calibration their training run stored (``training["calibration"]``); ``python -m qcgate.export`` writes the
uncalibrated placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from qcgate.contract.manifest import Calibration

__all__ = [
    "THRESHOLDS",
    "calibration_from_dict",
    "calibration_to_dict",
    "fit_calibration",
    "isotonic_fit",
]

THRESHOLDS: dict[str, Any] = {
    "warn": 60.0,
    "fail": 40.0,
    "scale": "calibrated quality 0-100 (higher is better); flag when below",
    "source": "docs/training.md#thresholds: quality labels of graded single corruptions on synthetic "
    "validation images",
}
MAX_KNOTS = 24


def isotonic_fit(
    x: ArrayLike, y: ArrayLike, *, increasing: bool = True, weights: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares monotone fit of ``y`` on ``x`` by pool-adjacent-violators.

    Returns the blocks as knots ``(x_mean, y_fit)``: ``x_mean`` strictly increasing (the weighted mean
    of the x values in each block; equal x values always share a block), ``y_fit`` non-decreasing
    (non-increasing when ``increasing`` is False). Non-finite pairs are ignored.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ws = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=np.float64)
    if not xs.shape == ys.shape == ws.shape:
        raise ValueError('Arguments "x", "y" and "weights" must have the same length.')
    keep = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(ws) & (ws > 0)
    xs, ys, ws = xs[keep], ys[keep], ws[keep]
    if xs.size == 0:
        raise ValueError('Arguments "x" and "y" must hold at least one finite pair.')
    sign = 1.0 if increasing else -1.0
    order = np.argsort(xs, kind="stable")
    xs, ys, ws = xs[order], sign * ys[order], ws[order]
    # Tied x values form one starting block each (a function cannot take two values at one x).
    _, starts = np.unique(xs, return_index=True)
    w = np.add.reduceat(ws, starts)
    wy = np.add.reduceat(ws * ys, starts)
    wx = np.add.reduceat(ws * xs, starts)
    blocks: list[list[float]] = []  # [weight, weighted y sum, weighted x sum]
    for block in zip(w, wy, wx, strict=True):
        blocks.append(list(block))
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last, strict=True)]
    weight = np.array([b[0] for b in blocks])
    return np.array([b[2] for b in blocks]) / weight, sign * np.array([b[1] for b in blocks]) / weight


def fit_calibration(
    raw: ArrayLike,
    quality: ArrayLike,
    *,
    higher_is_better: bool,
    max_knots: int = MAX_KNOTS,
    description: str = "",
) -> Calibration:
    """The manifest's calibration of ``raw`` onto ``quality`` (0-100), monotone in the score's direction."""
    if max_knots < 2:
        raise ValueError('Argument "max_knots" must be at least 2.')
    knots_x, knots_y = isotonic_fit(raw, quality, increasing=higher_is_better)
    knots_y = np.clip(knots_y, 0.0, 100.0)
    if knots_x.size == 1:  # a constant fit (or one distinct score): flat around it
        spread = max(abs(knots_x[0]) * 1e-6, 1e-9)
        knots_x = np.array([knots_x[0] - spread, knots_x[0] + spread])
        knots_y = np.repeat(knots_y, 2)
    if knots_x.size > max_knots:  # thin: the fitted curve read off at quantiles of the knots
        picks = np.unique(np.rint(np.linspace(0, knots_x.size - 1, max_knots)).astype(int))
        knots_x, knots_y = knots_x[picks], knots_y[picks]
    method = "isotonic regression (pool-adjacent-violators) of the 0-100 quality label, piecewise linear"
    return Calibration(
        raw=tuple(float(v) for v in knots_x),
        quality=tuple(float(v) for v in knots_y),
        calibrated=True,
        method=f"{method}; {description}" if description else method,
    )


def calibration_to_dict(calibration: Calibration) -> dict[str, Any]:
    return {
        "raw": list(calibration.raw),
        "quality": list(calibration.quality),
        "calibrated": calibration.calibrated,
        "method": calibration.method,
    }


def calibration_from_dict(data: Mapping[str, Any]) -> Calibration:
    return Calibration(
        raw=tuple(float(v) for v in data["raw"]),
        quality=tuple(float(v) for v in data["quality"]),
        calibrated=bool(data["calibrated"]),
        method=str(data.get("method", "")),
    )
