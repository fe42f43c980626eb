"""Rigid in-plane motion as one abrupt event during a sequential phase-encode acquisition.

The model, after the rank-based paper: lines are acquired in order of their phase-encode
frequency; at one line the object jumps (translates or rotates) and stays. The image registers
to wherever the object was while the k-space centre was acquired, so the corrupted lines are the
ones on the far side of the event from the centre: the outer k-space of one side. The paper adds
no motion when the event falls in the central 10% of k-space; here the event is always placed
outside it, so every severity above 0 moves something.

Severity sets when the event happened, not how far the object moved: the moved lines are those
beyond a fraction ``t = 0.1 ** (severity * jitter)`` of the k-space half-width, from none at
severity 0 to all lines outside the central 10% at 1. The amount of motion is random, as in the
paper, and so are the side, direction and jitter; none depends on the severity, so a seed at a
higher severity moves a superset of the lines by the same motion, and the error energy can only
grow. Natural images carry k-space energy falling like 1/k^2, so the error grows with -log(t),
that is about linearly with severity. For a stack (S, PE, RO), all slices share the event, as in
a 3D acquisition where each phase-encode line is read for every partition at once.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from qcgate.models.corruption.kspace import IN_PLANE, PE, RO, frequencies, to_image, to_kspace
from qcgate.models.corruption.record import Parameters

__all__ = ["motion_rotation", "motion_translation"]

_CENTRE_HALF_WIDTH = 0.05  # the central 10% of k-space lines, never moved
_EVENT_JITTER = (0.8, 1.0)  # the paper's event line is random; this keeps it graded by severity
_SHIFT_PX = (6.0, 16.0)  # translation range (the paper's maximum was 20 px at 396 px)
_ANGLE_DEG = (4.0, 10.0)  # rotation range (10 degrees move a head's rim by about 1.5 cm)
_DIRECTIONS = ("phase", "read", "both")


def motion_translation(
    image: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, Parameters]:
    """Lines after the event carry the phase ramp of a 6-16 px shift along PE, read-out, or both.

    A shift by (dy, dx) pixels multiplies k-space by exp(-2 pi i (k_PE dy / N_PE + k_RO dx / N_RO)),
    exact for sub-pixel shifts. Replicas (ghosts) of the object's edges appear along PE, the
    hallmark of motion during phase encoding.
    """
    moved, parameters = _moved_lines(image.shape[PE], severity, rng)
    direction = str(rng.choice(_DIRECTIONS))
    signs = rng.choice((-1.0, 1.0), size=2)
    distance = rng.uniform(*_SHIFT_PX)
    unit = {"phase": (1.0, 0.0), "read": (0.0, 1.0), "both": (np.sqrt(0.5), np.sqrt(0.5))}[direction]
    shift_pe, shift_ro = (distance * unit[axis] * signs[axis] + 0.0 for axis in (0, 1))  # + 0.0: no -0.0
    k_pe = frequencies(image.shape[PE])[:, None] / image.shape[PE]  # (PE, 1), cycles per pixel
    k_ro = frequencies(image.shape[RO])[None, :] / image.shape[RO]  # (1, RO)
    ramp = np.exp(-2j * np.pi * (k_pe * shift_pe + k_ro * shift_ro))  # (PE, RO)
    kspace = to_kspace(image)
    kspace = np.where(moved[:, None], kspace * ramp, kspace)
    parameters.update(direction=direction, shift_pe_px=float(shift_pe), shift_ro_px=float(shift_ro))
    return to_image(kspace), parameters


def motion_rotation(
    image: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, Parameters]:
    """Lines after the event come from the image rotated in-plane by 4-10 degrees about its centre.

    Rotation moves the rim of the object most, so the artifact is ghosted edges that grow
    towards the periphery. The rotated image is interpolated with cubic splines (real and
    imaginary parts alike).
    """
    moved, parameters = _moved_lines(image.shape[PE], severity, rng)
    angle = rng.uniform(*_ANGLE_DEG) * rng.choice((-1.0, 1.0))
    axes = tuple(axis % image.ndim for axis in IN_PLANE)
    rotated = ndimage.rotate(image.real, angle, axes=axes, reshape=False, order=3) + 1j * ndimage.rotate(
        image.imag, angle, axes=axes, reshape=False, order=3
    )
    kspace = np.where(moved[:, None], to_kspace(rotated), to_kspace(image))
    parameters["angle_deg"] = float(angle)
    return to_image(kspace), parameters


def _moved_lines(n_pe: int, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, Parameters]:
    """Which phase-encode lines were acquired in the moved position, and the event's record.

    The event falls before or after the centre at random; the lines on its far side, beyond
    ``0.1 ** (severity * jitter)`` of the half-width, moved. The outermost line always moves.
    """
    side = float(rng.choice((-1.0, 1.0)))
    threshold = (2.0 * _CENTRE_HALF_WIDTH) ** (severity * rng.uniform(*_EVENT_JITTER))
    position = side * frequencies(n_pe) / (n_pe / 2)  # 1 at the edge the moved lines lie on
    moved = position >= min(threshold, position.max())
    event_line = int(side * np.abs(frequencies(n_pe)[moved]).min())  # the moved line nearest DC
    return moved, {
        "event_line": event_line,
        "lines_moved": int(moved.sum()),
        "moved_side": "after_centre" if side > 0 else "before_centre",
    }
