"""The corruption simulator's entry points: one named corruption, or a random combination.

Inputs are 2D (R, C) or 3D (S, R, C), real magnitude or complex. They are brought to the complex
working layout (S, PE, RO) that every corruption in :mod:`~qcgate.models.corruption.hardware`,
:mod:`~qcgate.models.corruption.sampling` and :mod:`~qcgate.models.corruption.motion` expects,
corrupted there,
and returned as a float32 magnitude of the input's shape. A real input is taken as a magnitude
with zero phase; a complex one keeps its phase, so ghosts and folds interfere as on a scanner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qcgate.models.corruption import hardware, motion, sampling
from qcgate.models.corruption.record import AppliedCorruption, Artifact

__all__ = ["CORRUPTION_TYPES", "corrupt", "corrupt_random"]

_ARTIFACTS: dict[str, Artifact] = {
    "noise": hardware.noise,
    "blur": sampling.blur,
    "undersampling_1d": sampling.undersampling_1d,
    "undersampling_2d": sampling.undersampling_2d,
    "motion_translation": motion.motion_translation,
    "motion_rotation": motion.motion_rotation,
    "nyquist_ghost": hardware.nyquist_ghost,
    "spike": hardware.spike,
    "gibbs": sampling.gibbs,
    "bias_field": hardware.bias_field,
    "wrap_around": sampling.wrap_around,
}
CORRUPTION_TYPES: tuple[str, ...] = tuple(_ARTIFACTS)

# The order in which a combination is applied, following the signal's path: the object and the
# coil (bias, motion), spatial encoding (field of view), the receiver (thermal noise, odd/even
# echo mismatch, spikes), then what the protocol samples and the reconstruction filter. So noise
# is folded by wrap-around, zeroed with the lines undersampling drops, and smoothed by the filter.
_ACQUISITION_ORDER: tuple[str, ...] = (
    "bias_field",
    "motion_translation",
    "motion_rotation",
    "wrap_around",
    "noise",
    "nyquist_ghost",
    "spike",
    "undersampling_1d",
    "undersampling_2d",
    "gibbs",
    "blur",
)
_MIN_IN_PLANE = 16  # pixels per in-plane axis, below which k-space regions (centre, edge) blur together


def corrupt(
    image: np.ndarray, kind: str, severity: float, rng: np.random.Generator, phase_encode_axis: int = -2
) -> tuple[np.ndarray, AppliedCorruption]:
    """Apply one corruption of ``kind`` at ``severity`` (0..1) to every slice, in-plane.

    ``phase_encode_axis`` is one of the two in-plane axes of ``image``. Returns the float32
    magnitude of the input's shape and the record of what was applied; severity 0 returns the
    input magnitude unchanged and draws nothing from ``rng``. Raises ``ValueError`` naming the
    argument for an unknown kind, a severity outside [0, 1] or an unusable image or axis.
    """
    _check_kind(kind, "kind")
    severity = _check_severity(severity)
    stack, pe_last = _working_layout(image, phase_encode_axis)
    if severity == 0.0:
        return np.abs(image).astype(np.float32), AppliedCorruption(kind, 0.0, {})
    corrupted, parameters = _ARTIFACTS[kind](stack, severity, rng)
    return _as_magnitude(corrupted, image.shape, pe_last), AppliedCorruption(kind, severity, parameters)


def corrupt_random(
    image: np.ndarray,
    rng: np.random.Generator,
    max_corruptions: int = 5,
    kinds: Sequence[str] = CORRUPTION_TYPES,
    phase_encode_axis: int = -2,
) -> tuple[np.ndarray, list[AppliedCorruption]]:
    """0..max_corruptions distinct kinds at uniform random severities in (0, 1], combined.

    As in the rank-based paper, which added 0-5 corruptions per image: the count is uniform over
    0..min(max_corruptions, len(kinds)), the kinds are drawn without replacement from ``kinds``,
    and they are applied in acquisition order (see ``_ACQUISITION_ORDER``) to the complex image,
    taking the magnitude once at the end. The records come back in the order applied.
    """
    for kind in kinds:
        _check_kind(kind, "kinds")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f'Argument "kinds" must not repeat a kind, got {list(kinds)}.')
    integral = isinstance(max_corruptions, int | np.integer) and not isinstance(max_corruptions, bool)
    if not integral or max_corruptions < 0:
        raise ValueError(
            f'Argument "max_corruptions" must be a non-negative integer, got {max_corruptions!r}.'
        )
    stack, pe_last = _working_layout(image, phase_encode_axis)
    count = int(rng.integers(0, min(max_corruptions, len(kinds)) + 1))
    chosen = [kinds[index] for index in rng.choice(len(kinds), size=count, replace=False)]
    severities = 1.0 - rng.random(count)  # in (0, 1]
    records = []
    for kind, severity in sorted(zip(chosen, severities, strict=True), key=_acquisition_rank):
        stack, parameters = _ARTIFACTS[kind](stack, float(severity), rng)
        records.append(AppliedCorruption(kind, float(severity), parameters))
    return _as_magnitude(stack, image.shape, pe_last), records


def _acquisition_rank(kind_and_severity: tuple[str, float]) -> int:
    """Position of a corruption in the signal's path, the sort key of a combination."""
    return _ACQUISITION_ORDER.index(kind_and_severity[0])


def _check_kind(kind: str, argument: str) -> None:
    """Reject anything but a registered corruption name, naming ``argument`` and the valid names."""
    if kind not in _ARTIFACTS:
        raise ValueError(f'Argument "{argument}" must name kinds from {CORRUPTION_TYPES}, got {kind!r}.')


def _check_severity(severity: float) -> float:
    """The severity as a float, or ``ValueError`` unless it is a finite number in [0, 1]."""
    valid = (
        isinstance(severity, int | float | np.integer | np.floating)
        and not isinstance(severity, bool)
        and math.isfinite(severity)
        and 0.0 <= severity <= 1.0
    )
    if not valid:
        raise ValueError(f'Argument "severity" must be a number in [0, 1], got {severity!r}.')
    return float(severity)


def _working_layout(image: np.ndarray, phase_encode_axis: int) -> tuple[np.ndarray, bool]:
    """The complex128 stack (S, PE, RO) of ``image``, and whether PE was its last axis.

    Validates here, once, what every corruption relies on: a 2D or 3D finite numeric array with
    at least 16 pixels along each in-plane axis, and a phase-encode axis that is one of them.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError('Argument "image" must be a 2D (R, C) or 3D (S, R, C) numpy array.')
    if not (np.issubdtype(image.dtype, np.number) and np.isfinite(image).all()):
        raise ValueError(f'Argument "image" must hold finite real or complex numbers, got {image.dtype}.')
    if min(image.shape[-2:]) < _MIN_IN_PLANE:
        raise ValueError(
            f'Argument "image" must be at least {_MIN_IN_PLANE} pixels in-plane, got {image.shape}.'
        )
    in_plane = (image.ndim - 2, image.ndim - 1)
    if phase_encode_axis not in (*in_plane, -2, -1) or isinstance(phase_encode_axis, bool):
        raise ValueError(
            f'Argument "phase_encode_axis" must be an in-plane axis (-2 or -1), got {phase_encode_axis!r}.'
        )
    pe_last = phase_encode_axis % image.ndim == image.ndim - 1
    stack = image.astype(np.complex128).reshape(-1, *image.shape[-2:])  # (S, R, C)
    return (np.swapaxes(stack, -1, -2) if pe_last else stack), pe_last


def _as_magnitude(stack: np.ndarray, shape: tuple[int, ...], pe_last: bool) -> np.ndarray:
    """Undo :func:`_working_layout`: the float32 magnitude in the input's own axes and shape."""
    magnitude = np.abs(np.swapaxes(stack, -1, -2) if pe_last else stack)
    return magnitude.reshape(shape).astype(np.float32)
