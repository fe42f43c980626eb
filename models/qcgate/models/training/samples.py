"""One training sample per model, from a clean image and a random generator (numpy only).

Every sample is built the way the service will see an image (:mod:`qcgate.contract.preprocess`, the shared
input contract): the clean image is degraded whole, at native resolution and in the complex domain,
the degraded magnitude is normalised as a stack (``normalise``), and only then is a tile or patch
cut from it, never resized. Every sample passes through the evaluation-data guard
(:func:`qcgate.models.evaluation_guard.assert_not_evaluation_data`, through :func:`guard`) with its clean
image's provenance before it is returned; each sample carries ``refused``, the number of draws the
guard refused before it.

* ``msm`` (:func:`restoration_sample`): a degraded tile and its clean tile in the degraded image's
  units (divided by the same scale), for an L1 restoration loss; the ``clean_to_clean`` variant (the
  paper's) gives the clean tile for both; the ``error_map`` variant's target is the input minus
  the absolute error map ``|input - clean|``, so that MSM's residual ``|input - output|`` learns to
  estimate where and how much the tile is degraded rather than to undo it.
* ``rank_effnet`` (:func:`ranking_sample`): independently degraded copies of one tile, each
  normalised as its own image, and the simulated reader's verdict on every pair of them (0 first
  better, 1 similar, 2 second better), judged on the tiles against the clean tile.
* ``hysnet`` (:func:`labelled_slab`, :func:`slab_patches`): a slab of a clean volume (1-32 slices)
  degraded, its quality label (0-100, over the slab, against the clean slab) and its true SNR, and
  a few patches cut from it (thin slabs repeated along the slice axis, as the service pads them),
  each carrying the slab's label: as in HyS-net, patches inherit their volume's score and the
  service averages them. The slab is the costly part (VIF on every slice), so training caches a
  bank of them (:mod:`qcgate.models.training.bank`) and cuts fresh, mirrored patches on every pass.

Degradations (:func:`degrade`) mix clean images, single corruptions of every type at uniform
severity and the paper's random combinations, after optional thermal "base" noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qcgate.contract.preprocess import (
    MIN_FOREGROUND_FRACTION,
    Normalisation,
    foreground_fraction,
    foreground_scale,
    normalise,
    patch_padded,
)
from qcgate.models import evaluation_guard
from qcgate.models.corruption import (
    CORRUPTION_TYPES,
    ReaderConfig,
    composite_from_measures,
    corrupt,
    corrupt_random,
    quality_label,
    reader_preference,
    reference_measures,
    true_snr,
)
from qcgate.models.corruption.kspace import signal_level
from qcgate.models.nets.rank_effnet import A_BETTER, B_BETTER, SIMILAR
from qcgate.models.training.config import DataConfig
from qcgate.models.training.pool import CleanImage, CleanSource

__all__ = [
    "MAX_ATTEMPTS",
    "copy_pairs",
    "SNR_CAP",
    "Degraded",
    "degrade",
    "guard",
    "normalised_pair",
    "labelled_slab",
    "ranking_sample",
    "restoration_sample",
    "sample_rng",
    "slab_patches",
    "snr_target",
]

MAX_ATTEMPTS = 20  # draws per sample before giving up (blank images, windows without foreground)
SNR_CAP = 1000.0  # true SNR target: log10(min(SNR, cap)) / log10(cap), 0..1; noiseless images give 1
_PREFERENCE_CLASS = {"first": A_BETTER, "similar": SIMILAR, "second": B_BETTER}


class Redraw(ValueError):
    """This draw cannot make a sample (no foreground to normalise by or to score): draw again."""


class Refused(Redraw):
    """The fingerprint guard matched a synthetic sample to an evaluation image: never train on it."""


@dataclass(frozen=True)
class Degraded:
    """A degraded magnitude and what degraded it."""

    magnitude: np.ndarray  # float32, the input's shape
    kinds: tuple[str, ...]  # corruption types applied, "noise" included for base noise
    noise_sigma: float  # total thermal noise sigma per channel (0: noiseless)


def sample_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a run: independent of every other sample and worker."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(index)]))


def degrade(image: np.ndarray, rng: np.random.Generator, data: DataConfig) -> Degraded:
    """Degrade a clean complex image as training draws it (:class:`~.config.DataConfig`)."""
    pe_axis = -2 if rng.random() < 0.5 else -1
    if rng.random() < data.clean_fraction:
        return Degraded(np.abs(image).astype(np.float32), (), 0.0)
    work, kinds, variance = image.astype(np.complex128), [], 0.0
    if rng.random() < data.base_noise_probability:
        low, high = data.base_noise_snr
        snr = math.exp(rng.uniform(math.log(low), math.log(high)))
        sigma = signal_level(np.abs(work)) / snr
        draw = rng.standard_normal((2, *work.shape))
        work = work + sigma * (draw[0] + 1j * draw[1])
        kinds.append("noise")
        variance += sigma**2
    if rng.random() < data.single_fraction:
        kind = CORRUPTION_TYPES[int(rng.integers(len(CORRUPTION_TYPES)))]
        magnitude, record = corrupt(work, kind, 1.0 - rng.random(), rng, phase_encode_axis=pe_axis)
        records = [record]
    else:
        magnitude, records = corrupt_random(work, rng, data.max_corruptions, phase_encode_axis=pe_axis)
    for record in records:
        kinds.append(record.kind)
        variance += float(record.parameters.get("sigma", 0.0)) ** 2 if record.kind == "noise" else 0.0
    return Degraded(magnitude, tuple(kinds), math.sqrt(variance))


def normalised_pair(
    degraded: np.ndarray, clean: np.ndarray, method: Normalisation
) -> tuple[np.ndarray, np.ndarray]:
    """(S, R, C) degraded, normalised by :func:`qcgate.contract.preprocess.normalise`, and clean in the
    same units.

    The clean stack is divided by the degraded stack's scale(s), so that a restoration network
    learns to predict the clean image in the units it is shown. :class:`Redraw` for a blank stack.
    """
    try:
        normalised = normalise(degraded, method)
    except ValueError as exc:
        raise Redraw(str(exc)) from exc
    if method == "stack_foreground_p99":
        scales = np.full(degraded.shape[0], foreground_scale(degraded))
    else:
        scales = np.array([foreground_scale(image) for image in degraded])
    return normalised, (clean / scales[:, None, None]).astype(np.float32)


def restoration_sample(
    source: CleanSource,
    rng: np.random.Generator,
    data: DataConfig,
    crop: int,
    method: Normalisation,
    variant: str,
) -> dict[str, np.ndarray]:
    """MSM: ``input`` and ``target`` tiles (1, crop, crop), float32."""

    def draw() -> dict[str, np.ndarray]:
        clean = _draw_clean(source, rng)
        magnitude = clean.magnitude
        if variant == "clean_to_clean":
            degraded = magnitude
        else:
            degraded = degrade(clean.image, rng, data).magnitude
        inputs, targets = normalised_pair(degraded[None], magnitude[None], method)
        window = _window(clean.foreground, crop, rng)
        tiles = np.stack([_cut(inputs[0], window, crop), _cut(targets[0], window, crop)])  # (2, crop, crop)
        if variant == "error_map":  # the output the scorer reads as |input - output| = |input - clean|
            tiles[1] = tiles[0] - np.abs(tiles[0] - tiles[1])
        if foreground_fraction(tiles[0]) < MIN_FOREGROUND_FRACTION:
            raise Redraw("the tile has no foreground")
        guard(tiles, clean.provenance)
        return {"input": tiles[0][None], "target": tiles[1][None]}

    return _attempts(draw)


def ranking_sample(
    source: CleanSource, rng: np.random.Generator, data: DataConfig, crop: int, method: Normalisation
) -> dict[str, np.ndarray]:
    """rank_effnet: ``copies`` (k, 1, crop, crop) of one tile, degraded independently, each normalised as
    its own image; their ``composite`` (k,), the reader's 0..1 quality against the clean tile; and the
    reader's ``preference`` class for every pair of :func:`copy_pairs` (k (k - 1) / 2,).

    Several copies per tile share the cost of the reference measures: k copies give k (k - 1) / 2
    pairs for k measurements.
    """
    reader = ReaderConfig(flip_probability=data.reader_flip_probability)
    count = data.copies_per_tile

    def draw() -> dict[str, np.ndarray]:
        clean = _draw_clean(source, rng)
        window = _window(clean.foreground, crop, rng)
        reference = _cut(clean.magnitude, window, crop)
        tiles, composites = [], []
        for _ in range(count):
            degraded = degrade(clean.image, rng, data).magnitude
            normalised, _ = normalised_pair(degraded[None], degraded[None], method)
            tile = _cut(normalised[0], window, crop)
            if foreground_fraction(tile) < MIN_FOREGROUND_FRACTION:
                raise Redraw("the tile has no foreground")
            tiles.append(tile)
            measures = reference_measures(reference, _cut(degraded, window, crop))
            composites.append(composite_from_measures(measures))
        copies = np.stack(tiles)  # (k, crop, crop)
        guard(copies, clean.provenance)
        answers = [reader_preference(composites[a], composites[b], rng, reader) for a, b in copy_pairs(count)]
        return {
            "copies": copies[:, None],
            "composite": np.asarray(composites, dtype=np.float32),
            "preference": np.asarray([_PREFERENCE_CLASS[answer] for answer in answers], dtype=np.int64),
        }

    return _attempts(draw)


def copy_pairs(count: int) -> list[tuple[int, int]]:
    """The pairs (first, second) of ``count`` copies that the reader judges, in a fixed order."""
    return list(itertools.combinations(range(count), 2))


def labelled_slab(
    source: CleanSource, rng: np.random.Generator, data: DataConfig, method: Normalisation
) -> dict[str, np.ndarray]:
    """HyS-net's costly part: a degraded, normalised ``slab`` (1-32 slices), its ``quality`` (label /
    100, over the slab against the clean slab) and its ``snr`` target (:func:`snr_target`)."""

    def draw() -> dict[str, np.ndarray]:
        clean = _draw_clean(source, rng)
        depth = int(data.depths[int(rng.integers(len(data.depths)))])
        first = int(rng.integers(0, clean.image.shape[0] - depth + 1))
        image = clean.image[first : first + depth]
        foreground = clean.foreground[first : first + depth]
        if not foreground.any():
            raise Redraw("the slab has no foreground")
        reference = np.abs(image).astype(np.float32)
        degraded = degrade(image, rng, data)
        normalised, _ = normalised_pair(degraded.magnitude, degraded.magnitude, method)
        guard(normalised, clean.provenance)
        label = quality_label(reference_measures(reference, degraded.magnitude))
        snr = true_snr(reference, degraded.noise_sigma, foreground)
        return {
            "slab": normalised,
            "quality": np.float32(label / 100.0),
            "snr": np.float32(snr_target(snr)),
        }

    return _attempts(draw)


def slab_patches(
    slab: dict[str, np.ndarray], tile: tuple[int, ...], count: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``patches`` (k, 1, *tile) of a :func:`labelled_slab`, mirrored at random, each carrying the
    slab's ``quality`` and ``snr``: as in HyS-net, patches inherit their volume's score and the
    service averages them. Mirroring keeps the label (no corruption has a handedness) and makes
    every pass over a cached slab a different sample."""
    volume = slab["slab"]
    for axis in range(3):
        if rng.random() < 0.5:
            volume = np.flip(volume, axis=axis)
    patches = _patches(patch_padded(np.ascontiguousarray(volume), tile), tile, count, rng)
    return {
        "patches": patches[:, None],
        "quality": np.full(len(patches), slab["quality"], dtype=np.float32),
        "snr": np.full(len(patches), slab["snr"], dtype=np.float32),
    }


def snr_target(snr: float) -> float:
    """The auxiliary SNR target: log10 of the true SNR, capped at :data:`SNR_CAP`, scaled to 0..1."""
    return (
        float(np.clip(math.log10(max(snr, 1.0)) / math.log10(SNR_CAP), 0.0, 1.0)) if snr < math.inf else 1.0
    )


def guard(array: np.ndarray, provenance: dict[str, Any]) -> None:
    """Call the evaluation-data guard on a sample; :class:`Refused` for a fingerprint match of synthetic data.

    A sample whose provenance marks evaluation data always raises
    :class:`~qcgate.models.evaluation_guard.EvaluationDataLeak`: that is a leak. A synthetic sample whose
    fingerprint resembles an evaluation slice is refused and redrawn instead (it is never trained
    on either way), and counted; the training loop stops if refusals exceed
    ``DataConfig.max_refused_fraction``. The small 64 x 64 evaluation head has a threshold (0.35)
    low enough that about one 128^2 synthetic tile in 500, and one 32x64x64 synthetic slab in 20,
    matches it (mostly its wrap-around folds).
    """
    if provenance.get("kind") == evaluation_guard.EVALUATION_KIND:
        evaluation_guard.assert_not_evaluation_data(array, provenance)  # raises
    try:
        evaluation_guard.assert_not_evaluation_data(array, provenance)
    except evaluation_guard.EvaluationDataLeak as exc:
        raise Refused(str(exc)) from exc


def _attempts(draw: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The first draw that makes a sample, with ``refused``: how many guard refusals preceded it."""
    refused = 0
    for _ in range(MAX_ATTEMPTS):
        try:
            sample = draw()
        except Refused:
            refused += 1
            continue
        except Redraw:
            continue
        return {**sample, "refused": np.int64(refused)}
    raise RuntimeError(f"no usable sample in {MAX_ATTEMPTS} draws: the clean images have no foreground")


def _draw_clean(source: CleanSource, rng: np.random.Generator) -> CleanImage:
    return source[int(rng.integers(len(source)))]


def _window(foreground: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a crop x crop window centred on a random foreground pixel, inside the image."""
    rows, cols = foreground.shape
    inside = np.flatnonzero(foreground)
    centre = int(inside[rng.integers(inside.size)]) if inside.size else rows * cols // 2
    row, col = divmod(centre, cols)
    return (
        int(np.clip(row - crop // 2, 0, max(0, rows - crop))),
        int(np.clip(col - crop // 2, 0, max(0, cols - crop))),
    )


def _cut(image: np.ndarray, corner: tuple[int, int], crop: int) -> np.ndarray:
    """The crop x crop window at ``corner``, zero-padded (air) at the bottom and right where it overhangs."""
    window = image[corner[0] : corner[0] + crop, corner[1] : corner[1] + crop]
    if window.shape == (crop, crop):
        return window.astype(np.float32)
    padded = np.zeros((crop, crop), dtype=np.float32)
    padded[: window.shape[0], : window.shape[1]] = window
    return padded


def _patches(volume: np.ndarray, tile: tuple[int, ...], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` patches (k, *tile) with foreground at random offsets of a :func:`patch_padded` volume."""
    patches = []
    for _ in range(count * 4):
        corner = [int(rng.integers(0, n - t + 1)) for n, t in zip(volume.shape, tile, strict=True)]
        cube = volume[tuple(slice(c, c + t) for c, t in zip(corner, tile, strict=True))]
        if foreground_fraction(cube) >= MIN_FOREGROUND_FRACTION:
            patches.append(cube)
            if len(patches) == count:
                return np.stack(patches)
    raise Redraw("too few patches with foreground")
