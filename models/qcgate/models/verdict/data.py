"""Seeded synthetic training samples for the verdict model: clean and corrupted copies, re-stored.

One *base* is a clean synthetic slice (:func:`qcgate.models.synthesis.synthesize_slice`, matrix
48-512, :func:`synthesis_config`) with a scanner noise floor: complex Gaussian noise at an SNR
of 12-100 on one coil (the phase kept, so corruptions interfere as on a scanner), or the sum of
squares of 2-16 coils (non-central chi, magnitude only), through a scanner's reconstruction
(:class:`Reconstruction`: k-space filters, g-factor noise, interpolation to a finer displayed
matrix). Each base gives ``copies`` samples: the base itself twice (the second always cropped to
the anatomy, zero-filled outside a dilated mask or skull-stripped), then single corruptions at a
random severity (80 %) and random combinations (20 %). The label is the physics-derived reference
(:func:`qcgate.models.corruption.quality_label` of the copy against the base), computed *before*
the copy is re-stored benignly (:func:`restore`), so the label never sees the storing. Each row
also keeps the shipped learned metrics' scores of the re-stored copy (:mod:`.learned_inputs`), so
the fit may read them as the service hands them at run time.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qcgate.contract.artifacts import artifact_features
from qcgate.contract.verdict_model import FINDING_KINDS, KIND_OF_CORRUPTION
from qcgate.models.corruption import (
    CORRUPTION_TYPES,
    corrupt,
    corrupt_random,
    quality_label,
    reference_measures,
)
from qcgate.models.corruption.kspace import to_image, to_kspace
from qcgate.models.evaluation_guard import assert_not_evaluation_data
from qcgate.models.synthesis import SynthesisConfig, synthesize_slice
from qcgate.models.verdict.learned_inputs import learned_scores

__all__ = [
    "FINDING_KINDS",
    "KIND_OF_CORRUPTION",
    "RESTORINGS",
    "Sample",
    "make_base",
    "restore",
    "samples_for_base",
    "synthesis_config",
]

RESTORINGS: tuple[str, ...] = (
    "scale",
    "quantise",
    "flip",
    "transpose",
    "zero_air",
    "skull_strip",
    "crop",
    "pad",
)
CONFIG = SynthesisConfig(matrix=(64, 512))
# Coarse matrices (a low-resolution brain, an EPI), pixels up to 8 mm so the field of view still
# covers the object; 48, not less: VIF, in the label, needs 41 pixels.
SMALL_MATRIX = SynthesisConfig(matrix=(48, 64), pixel_mm=(0.3, 8.0))
SMALL_MATRIX_SHARE = 1 / 6


@dataclass(frozen=True)
class Sample:
    """One training row: features of the re-stored copy, its label and what was applied."""

    base_seed: int
    copy: int  # index of the copy within its base (0, 1: clean)
    features: dict[str, float]
    per_slice_air: float  # 1.0 when the copy's air holds noise (its air features are measured)
    label: float  # 0..100 reference quality of the copy against its base
    severities: dict[str, float]  # finding kind -> applied severity (max over corruptions)
    single_kind: str | None  # the corruption type when exactly one was applied
    restorings: tuple[str, ...]
    learned: dict[str, float]  # the shipped learned metrics' scores, higher is worse (.learned_inputs)


@dataclass(frozen=True)
class Reconstruction:
    """What a scanner's reconstruction does to a clean acquisition, drawn at random per base.

    Real clean images are not white-noise-limited up to the matrix edge: vendors apodise k-space
    (a Fermi or Tukey "raw filter", which correlates the noise and softens the finest detail),
    parallel imaging leaves a noise level that varies smoothly over the image (the g-factor), and
    most clinical series are displayed on a finer matrix than was acquired: the scanner zero-fills
    k-space ("interpolation", ZIP; a 256 x 134 acquisition shown at 484 x 484), so the outer
    k-space of the stored matrix is empty, or interpolates in the image (linear or cubic), which
    leaves a soft roll-off instead of a cliff. A model that only ever saw white noise up to kmax would
    read every real clean image as blurred, and every interpolated one as truncated. All three are
    drawn here as part of the clean base (its label stays 100); the simulator's corruptions come
    on top of them, in the pixels of the displayed matrix.
    """

    window: np.ndarray  # (R, C) k-space gain, 1 at the centre, 0 where nothing was acquired
    g_map: np.ndarray | None  # (R, C) noise amplification >= 1, or None
    spline_order: int | None = None  # interpolated in the image with this order; None: zero-filled

    @classmethod
    def draw(cls, shape: tuple[int, ...], rng: np.random.Generator) -> Reconstruction:
        acquired = _acquired_fraction(rng)
        # k-space radius over the acquired extent per axis: the raw filter acts on what was
        # acquired, and everything beyond 1 was zero-filled
        kr = np.abs(np.arange(shape[0]) - shape[0] // 2) / (shape[0] / 2) / acquired[0]
        kc = np.abs(np.arange(shape[1]) - shape[1] // 2) / (shape[1] / 2) / acquired[1]
        choice = rng.random()
        if choice < 0.35:  # no filter
            window = np.ones(shape)
        elif choice < 0.7:  # Fermi, radial or per axis
            cut, width = rng.uniform(0.8, 0.97), rng.uniform(0.02, 0.06)
            if rng.random() < 0.5:
                window = 1.0 / (1.0 + np.exp((np.hypot(kr[:, None], kc[None, :]) - cut) / width))
            else:
                window = np.outer(
                    1.0 / (1.0 + np.exp((kr - cut) / width)), 1.0 / (1.0 + np.exp((kc - cut) / width))
                )
        else:  # Tukey: flat, then a raised cosine over the outer ``alpha`` of k-space, per axis
            alpha, floor = rng.uniform(0.1, 0.35), rng.uniform(0.2, 0.6)
            taper = [
                np.where(k < 1 - alpha, 1.0, floor + (1 - floor) * _raised_cosine((k - 1 + alpha) / alpha))
                for k in (kr, kc)
            ]
            window = np.outer(*taper)
        window = window * np.outer(kr <= 1.0, kc <= 1.0)
        g_map = None
        if rng.random() < 0.3:  # parallel imaging: a smooth g-factor map between 1 and 1.2-2
            lattice = rng.random((4, 4))
            field = ndimage.zoom(lattice, (shape[0] / 4, shape[1] / 4), order=3, mode="nearest")
            field = field[: shape[0], : shape[1]]
            field = (field - field.min()) / max(float(np.ptp(field)), 1e-9)
            g_map = 1.0 + rng.uniform(0.2, 1.0) * field
        spline_order = None if acquired.min() == 1.0 or rng.random() < 0.5 else int(rng.choice([1, 3]))
        return cls(
            window.astype(np.float32), None if g_map is None else g_map.astype(np.float32), spline_order
        )

    def noise(self, sigma: float, rng: np.random.Generator) -> np.ndarray:
        """Complex Gaussian noise of std ``sigma`` per channel, amplified by the g-factor map."""
        shape = self.window.shape
        noise = sigma * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
        return noise if self.g_map is None else noise * self.g_map

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The complex image through the k-space window, zero-filled or interpolated in the image
        to the displayed matrix."""
        kspace = to_kspace(image) * self.window
        if self.spline_order is None:
            return to_image(kspace)
        rows, cols = np.flatnonzero(self.window.any(axis=1)), np.flatnonzero(self.window.any(axis=0))
        acquired = to_image(kspace[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        grid = np.meshgrid(
            *((np.arange(n) + 0.5) * m / n - 0.5 for n, m in zip(image.shape, acquired.shape, strict=True)),
            indexing="ij",
        )
        return ndimage.map_coordinates(
            acquired.real, grid, order=self.spline_order, mode="nearest"
        ) + 1j * ndimage.map_coordinates(acquired.imag, grid, order=self.spline_order, mode="nearest")


def _acquired_fraction(rng: np.random.Generator) -> np.ndarray:
    """The acquired share of the displayed k-space per axis (1: not interpolated).

    Half the bases are interpolated: the displayed matrix is 1-2 times the acquired one along
    both axes (Siemens' interpolation doubles it; GE's ZIP and Philips' reconstruction matrix are
    free), and one axis, the phase-encode one of a rectangular acquisition, may hold up to a
    further 1.5 times fewer lines; never below 40 % of the displayed matrix.
    """
    if rng.random() < 0.5:
        return np.ones(2)
    both = rng.uniform(0.5, 1.0)
    fewer = np.ones(2)
    fewer[int(rng.integers(0, 2))] = rng.uniform(1.0, 1.5)
    return np.maximum(both / fewer, 0.4)


def _raised_cosine(t: np.ndarray) -> np.ndarray:
    """1 at ``t <= 0`` falling to 0 at ``t = 1`` (half a cosine period)."""
    return 0.5 * (1.0 + np.cos(np.pi * np.clip(t, 0.0, 1.0)))


def synthesis_config(seed: int) -> SynthesisConfig:
    """:data:`SMALL_MATRIX` for a sixth of the bases, :data:`CONFIG` (matrix 64-512) for the rest.

    Model 0.5.0, trained on 64-512 only, warned on or failed 27 % of clean synthetic slices of
    matrix 48-64 against 4 % at 64-512 (``python -m qcgate.bench.verdict_matrix``). The choice has
    a random stream of its own, so the other bases stay what they were.
    """
    rng = np.random.default_rng([seed, zlib.crc32(b"verdict-matrix")])
    return SMALL_MATRIX if rng.random() < SMALL_MATRIX_SHARE else CONFIG


def make_base(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(base image (complex or magnitude), foreground) for ``seed``: clean anatomy plus a noise floor."""
    synthetic = synthesize_slice(seed, synthesis_config(seed))
    rng = np.random.default_rng([seed, 7])
    signal = float(np.mean(synthetic.magnitude[synthetic.foreground]))
    sigma = signal / float(np.exp(rng.uniform(np.log(12.0), np.log(100.0))))
    coils = int(rng.choice([1, 1, 2, 4, 8, 16]))
    image = synthetic.image
    recon = Reconstruction.draw(image.shape, rng)
    first = recon.apply(image + recon.noise(sigma, rng))
    if coils == 1:
        base = first.astype(np.complex64)
    else:
        extra = sum(np.abs(recon.apply(recon.noise(sigma, rng))) ** 2 for _ in range(coils - 1))
        base = np.sqrt(np.abs(first) ** 2 + extra).astype(np.float32)
    assert_not_evaluation_data(np.abs(base), synthetic.provenance)
    return base, synthetic.foreground


def restore(
    image: np.ndarray, foreground: np.ndarray, rng: np.random.Generator, p: float = 0.35, strong: bool = False
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A benign re-storing of a 2D magnitude: each of :data:`RESTORINGS` with probability ``p``.

    What changes the air or the field of view (``zero_air``, ``skull_strip``, ``crop``) is drawn
    with probability ``p`` too; ``strong`` forces one of them (the clean copies that teach the model
    that a cropped or zero-filled clean image is still clean).
    """
    x = np.asarray(image, dtype=np.float64)
    mask = foreground
    done = []
    if rng.random() < p:
        x = x * np.exp(rng.uniform(np.log(1e-2), np.log(1e4)))
        done.append("scale")
    if rng.random() < p:
        bits = int(rng.integers(8, 17))
        x = np.round(x / x.max() * (2**bits - 1))
        done.append("quantise")
    if rng.random() < p:
        axis = int(rng.integers(0, 2))
        x, mask = np.flip(x, axis), np.flip(mask, axis)
        done.append("flip")
    if rng.random() < p:
        x, mask = x.T, mask.T
        done.append("transpose")
    air = int(rng.integers(0, 3)) if strong else -1  # 0 zero_air, 1 skull_strip, 2 crop only
    if air == 0 or (air < 0 and rng.random() < p):
        dilated = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 6)))
        x = np.where(dilated, x, 0.0)
        done.append("zero_air")
    elif air == 1 or (air < 0 and rng.random() < p * 0.4):
        eroded = ndimage.binary_erosion(mask, iterations=int(rng.integers(1, 6)))
        if eroded.sum() > 256:
            x, mask = np.where(eroded, x, 0.0), eroded
            done.append("skull_strip")
    if (air == 2 or rng.random() < p) and mask.any():
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        margin = int(rng.integers(0, 6))
        r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, x.shape[0])
        c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, x.shape[1])
        if min(r1 - r0, c1 - c0) >= 32:
            x, mask = x[r0:r1, c0:c1], mask[r0:r1, c0:c1]
            done.append("crop")
    if rng.random() < p * 0.6:
        widths = rng.integers(0, max(2, int(0.3 * min(x.shape))), size=4)
        x = np.pad(x, ((widths[0], widths[1]), (widths[2], widths[3])))
        done.append("pad")
    return np.ascontiguousarray(x), tuple(done)


def samples_for_base(seed: int, copies: int = 6) -> list[Sample]:
    """The base of ``seed`` twice (re-stored at random, then with a forced crop, zero-filled air or
    skull strip) and ``copies - 2`` corrupted copies, each re-stored and featurised."""
    base, foreground = make_base(seed)
    reference = np.abs(base).astype(np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(b"verdict-copies")])
    samples = []
    for index in range(copies):
        severities = dict.fromkeys(FINDING_KINDS, 0.0)
        single = None
        if index < 2:
            corrupted, label = reference, 100.0
        else:
            axis = int(rng.choice([-2, -1]))
            if rng.random() < 0.8:
                kind = str(rng.choice(CORRUPTION_TYPES))
                severity = float(rng.uniform(0.0, 1.0))
                corrupted, record = corrupt(base, kind, severity, rng, phase_encode_axis=axis)
                records = [record]
                single = kind
            else:
                corrupted, records = corrupt_random(base, rng, max_corruptions=3, phase_encode_axis=axis)
                single = records[0].kind if len(records) == 1 else None
            for record in records:
                finding = KIND_OF_CORRUPTION[record.kind]
                severities[finding] = max(severities[finding], float(record.severity))
            label = quality_label(reference_measures(reference, corrupted))
        stored, restorings = restore(corrupted, foreground, rng, strong=index == 1)
        features = artifact_features(stored)
        if features is None:
            continue
        samples.append(
            Sample(
                seed,
                index,
                features.values,
                features.air_usable,
                float(label),
                severities,
                single,
                restorings,
                learned_scores(stored),
            )
        )
    return samples
