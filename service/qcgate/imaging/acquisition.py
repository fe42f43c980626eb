"""What share of a frame's k-space the scanner acquired, read from its header.

Scanners commonly show an image on a finer grid than they sampled: a 256 x 134 acquisition shown
at 484 x 484, or any acquisition "interpolated" (zero-filled in k-space) to twice its matrix. Such
an image has nothing beyond the acquired part of its spectrum, and to a measure of sharpness
against the pixel grid it looks blurred. The verdict brings it back to the acquired grid first
(:mod:`qcgate.contract.resolution`); this module says how far, per in-plane axis.

The acquired resolution along an axis is its field of view over the samples taken along it:

* samples: ``AcquisitionMatrix`` (classic MR; "frequency rows \\ frequency columns \\ phase rows \\
  phase columns", two of them zero), or ``MRAcquisitionFrequencyEncodingSteps`` and
  ``MRAcquisitionPhaseEncodingStepsInPlane`` (Enhanced MR). Which is which in-plane axis comes
  from ``InPlanePhaseEncodingDirection`` (COL: the phase was encoded down a column, along the
  rows' axis). The row/column words of ``AcquisitionMatrix`` are read differently by different
  vendors, the phase direction is not, so without it no share is given;
* field of view: the displayed grid along the frequency axis (``Rows`` or ``Columns`` times its
  ``PixelSpacing``); along the phase axis, ``PercentPhaseFieldOfView`` of that (a rectangular
  field of view samples fewer phase lines for the same resolution).

The share of an axis is its displayed pixel size over its acquired one, at most 1. None when the
header does not say, or says something that cannot be an acquisition (zero or negative samples, a
share below :data:`MIN_SHARE`): the verdict then reads the pixels as they are, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["MIN_SHARE", "acquired_share"]

MIN_SHARE = 0.1  # a header claiming less than a tenth of the displayed k-space is taken as malformed
_PHASE_FOV_RANGE = (10.0, 400.0)  # PercentPhaseFieldOfView outside this is malformed, read as 100


def _number(value: Any) -> float | None:
    """A positive finite number, or None (absent, malformed, zero, negative, NaN or infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _samples(first: Callable[[str], Any]) -> tuple[float, float] | None:
    """(frequency, phase) samples from either header form, or None."""
    matrix = first("AcquisitionMatrix")
    if matrix is not None:
        try:
            values = [_number(v) or 0.0 for v in matrix]
        except TypeError:  # a single value, not a list
            return None
        if len(values) != 4:
            return None
        frequency, phase = max(values[0], values[1]), max(values[2], values[3])
    else:
        frequency = _number(first("MRAcquisitionFrequencyEncodingSteps")) or 0.0
        phase = _number(first("MRAcquisitionPhaseEncodingStepsInPlane")) or 0.0
    return (frequency, phase) if frequency > 0 and phase > 0 else None


def acquired_share(
    first: Callable[[str], Any],
    shape: tuple[int, int],
    pixel_spacing: tuple[float, float] | None,
    phase_encode_axis: int | None,
) -> tuple[float, float] | None:
    """(rows' axis, columns' axis): the share of the displayed k-space acquired along each in-plane
    axis of a ``shape`` (rows, columns) frame, each in [:data:`MIN_SHARE`, 1]; ``first`` looks a
    header keyword up (the frame's functional groups, then the top-level header); the phase axis is
    1 (phase down a column) or 2 (along a row), as :class:`qcgate.imaging.geometry.Frame` has it."""
    if phase_encode_axis not in (1, 2):
        return None
    samples = _samples(first)
    if samples is None:
        return None
    frequency_samples, phase_samples = samples
    spacing = pixel_spacing or (1.0, 1.0)
    if not all(math.isfinite(value) and value > 0 for value in spacing) or min(shape) < 1:
        return None
    phase_index = phase_encode_axis - 1  # 0: the rows' axis, 1: the columns' axis
    frequency_index = 1 - phase_index
    percent = _number(first("PercentPhaseFieldOfView")) or 100.0
    if not _PHASE_FOV_RANGE[0] <= percent <= _PHASE_FOV_RANGE[1]:
        percent = 100.0
    frequency_fov = shape[frequency_index] * spacing[frequency_index]
    acquired_mm = [0.0, 0.0]
    acquired_mm[frequency_index] = frequency_fov / frequency_samples
    acquired_mm[phase_index] = percent / 100.0 * frequency_fov / phase_samples
    share = tuple(min(1.0, spacing[axis] / acquired_mm[axis]) for axis in (0, 1))
    if min(share) < MIN_SHARE:
        return None
    return (round(share[0], 4), round(share[1], 4))
