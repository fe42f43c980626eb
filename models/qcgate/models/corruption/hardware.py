"""Corruptions of the receive chain and the coil: thermal noise, N/2 ghosts, spikes, bias field.

Each function takes the complex working stack (S, PE, RO), a severity in (0, 1] and a generator,
and returns the corrupted complex stack and the parameters it applied. Random draws never depend
on the severity, so one seed at growing severities scales one and the same artifact: that is what
makes every kind monotone in effect.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from qcgate.models.corruption.kspace import PE, RO, frequencies, signal_level, to_image, to_kspace
from qcgate.models.corruption.record import Parameters

__all__ = ["bias_field", "noise", "nyquist_ghost", "spike"]

# Signal-to-noise ratio (foreground mean / sigma) at severity 1: a barely diagnostic image.
_SNR_AT_FULL_SEVERITY = 3.0
# Nyquist ghost: constant and read-out-linear phase error between odd and even lines at severity 1.
# Together at most 0.4*pi, so the ghost (sin(phi/2)) stays weaker than the object (cos(phi/2)).
_GHOST_CONSTANT_PHASE = 0.3 * np.pi
_GHOST_LINEAR_PHASE = 0.2 * np.pi  # across the read-out field of view
# Spike: herringbone amplitude per spike, relative to the signal level, at severity 1.
_SPIKE_STRIPE_AMPLITUDE = 0.15
_SPIKE_COUNTS = (1, 2, 3)
_SPIKE_RADIUS = (0.1, 0.8)  # fraction of the half k-space extent, so stripes are neither shading nor grain
# Bias field: log-gain amplitude at severity 1 (gains from about x0.4 to x2.5, a surface coil at 3 T).
_BIAS_LOG_AMPLITUDE = 0.9
_BIAS_CONTROL_POINTS = 4  # per in-plane axis: a field smoother than any anatomy


def noise(image: np.ndarray, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, Parameters]:
    """Complex white Gaussian noise, sigma = severity * S / 3 per channel (S: :func:`signal_level`).

    Added in the image; the transforms are unitary, so this is the same as adding it to every
    k-space sample, as the receiver does. The magnitude taken at the end makes it Rician in tissue
    and Rayleigh in air. One sigma serves the whole stack, as one receiver gain would.
    """
    level = signal_level(np.abs(image))
    sigma = severity * level / _SNR_AT_FULL_SEVERITY
    draw = rng.standard_normal((2, *image.shape))
    noisy = image + sigma * (draw[0] + 1j * draw[1])
    snr = level / sigma if sigma > 0 else float("inf")
    return noisy, {"sigma": float(sigma), "signal_level": level, "snr": float(snr)}


def nyquist_ghost(
    image: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, Parameters]:
    """Phase error phi(x_RO) = phi0 + phi1 * x_RO on every odd phase-encode line: an N/2 ghost.

    This is echo-planar imaging's odd/even echo mismatch: in hybrid space (k_PE, x_RO) the odd
    lines carry an extra phase, constant (timing) plus linear along read-out (echo shift). The
    image becomes ``cos(phi/2)`` of the object plus ``sin(phi/2)`` of a copy shifted by half the
    field of view along phase encoding, and the read-out-linear part makes the ghost vary across
    the image as on a scanner.
    """
    constant = severity * _GHOST_CONSTANT_PHASE * rng.choice((-1.0, 1.0))
    linear = severity * _GHOST_LINEAR_PHASE * rng.uniform(-1.0, 1.0)
    read_out = frequencies(image.shape[RO]) / image.shape[RO]  # -0.5 .. 0.5 of the field of view
    phase = constant + linear * read_out  # (RO,)
    odd = (frequencies(image.shape[PE]) % 2 == 1)[:, None]  # (PE, 1)
    hybrid = to_kspace(image, axes=(PE,))
    hybrid = np.where(odd, hybrid * np.exp(1j * phase), hybrid)
    return to_image(hybrid, axes=(PE,)), {
        "constant_phase_rad": float(constant),
        "linear_phase_rad": float(linear),
        "ghost_shift_px": image.shape[PE] / 2,
    }


def spike(image: np.ndarray, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, Parameters]:
    """One to three bright k-space samples (static discharge): herringbone stripes over the image.

    A spike at k-space offset (p, r) adds a plane wave of that frequency to every pixel; its
    amplitude is severity * 0.15 of the signal level per spike. Spikes sit between 10% and 80%
    of the k-space half-extent, so their stripes are visible as stripes. The same spikes hit every
    slice of a stack (a persistent discharge), so a volume's severity is graded like a slice's.
    """
    count = int(rng.choice(_SPIKE_COUNTS))
    radius = rng.uniform(*_SPIKE_RADIUS, size=count)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=count)
    spike_phase = rng.uniform(0.0, 2.0 * np.pi, size=count)
    n_pe, n_ro = image.shape[PE], image.shape[RO]
    lines = np.rint(radius * (n_pe // 2) * np.sin(angle)).astype(int)
    columns = np.rint(radius * (n_ro // 2) * np.cos(angle)).astype(int)
    stripe = severity * _SPIKE_STRIPE_AMPLITUDE * signal_level(np.abs(image))
    amplitude = stripe * np.sqrt(n_pe * n_ro)  # unitary transform: a sample spreads 1/sqrt(N) per pixel
    kspace = to_kspace(image)
    parameters: Parameters = {"count": count, "stripe_amplitude": float(stripe)}
    for index, (line, column, phase) in enumerate(zip(lines, columns, spike_phase, strict=True), start=1):
        kspace[..., line + n_pe // 2, column + n_ro // 2] += amplitude * np.exp(1j * phase)
        parameters[f"spike_{index}_pe"] = int(line)
        parameters[f"spike_{index}_ro"] = int(column)
    return to_image(kspace), parameters


def bias_field(image: np.ndarray, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, Parameters]:
    """Multiply by exp(severity * 0.9 * f), f a smooth zero-mean field scaled to max |f| = 1.

    The receive sensitivity of a surface coil and B1 inhomogeneity vary slowly over the body: a
    cubic interpolation of a 4 x 4 grid of random values per in-plane axis (and up to 4 along the
    slices, so a stack's field is smooth in 3D) is smooth on the scale of a head. It multiplies the
    image in the image domain; k-space has nothing to add here.
    """
    slices = min(image.shape[0], _BIAS_CONTROL_POINTS)
    coarse = rng.standard_normal((slices, _BIAS_CONTROL_POINTS, _BIAS_CONTROL_POINTS))
    zoom = [target / source for target, source in zip(image.shape, coarse.shape, strict=True)]
    field = ndimage.zoom(coarse, zoom, order=3, mode="nearest", grid_mode=True)  # (S, PE, RO)
    field -= field.mean()
    field /= np.abs(field).max()
    gain = np.exp(severity * _BIAS_LOG_AMPLITUDE * field)
    return image * gain, {
        "log_amplitude": float(severity * _BIAS_LOG_AMPLITUDE),
        "min_gain": float(gain.min()),
        "max_gain": float(gain.max()),
    }
