"""Validation on held-out synthetic images, scored as the service scores them, as the benchmark judges.

The validation set mirrors the quality benchmark (``bench/quality``) on synthetic images whose seeds
no training run draws (:data:`~qcgate.models.training.config.VALIDATION_SEED_BASE`): each image is scored
clean, at every severity of every corruption type (one random stream per image and type, so the
severities scale one and the same artifact) and under random combinations. 2D images are cut, after
corruption, to at most ``max_side`` pixels per axis around the object's centre and treated as the
whole image from then on; 3D images are slabs of 1-32 slices of a validation volume. Each copy
keeps its SSIM and quality label against the clean copy and the reader's composite. The set is
built once per data version and validation config and cached beside the clean pool.

:func:`score_copies` scores copies like ``service/metrics/learned.py``: native resolution, padding
to the network's multiple, windows of the scorer's tile with stride, windows with under 1 %
foreground skipped, the mean of a slice's tiles, then the mean over slices (2D) or over patches
(3D). :func:`summarise` reports Spearman's correlation of the score, oriented so that higher is
better, with SSIM and with the label: within each image (the mean of per-image correlations, the
benchmark's "within-source") and pooled over images, per corruption type (with the clean copy),
for ``random`` and ``overall``; and the share of clear pairs (composites more than the reader's
just-noticeable difference apart) that the score orders like the noiseless reader.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from qcgate.contract.preprocess import (
    FOREGROUND_LEVEL,
    MIN_FOREGROUND_FRACTION,
    Normalisation,
    normalise,
    patch_padded,
    slice_windows,
    slices_padded,
    window_starts,
)
from qcgate.models import evaluation_guard
from qcgate.models.code_key import cache_version
from qcgate.models.corruption import (
    CORRUPTION_TYPES,
    DEFAULT_READER,
    composite_from_measures,
    corrupt,
    corrupt_random,
    reference_measures,
)
from qcgate.models.nets.spec import ScorerSpec
from qcgate.models.training.config import VALIDATION_SEED_BASE, ValidationConfig
from qcgate.models.training.pool import DEFAULT_CACHE_DIR, SyntheticPool, save_npz_atomically

__all__ = ["CLEAN", "OVERALL", "RANDOM", "ValidationSet", "build_validation_set", "score_copies", "summarise"]

CLEAN, RANDOM, OVERALL = "clean", "random", "overall"
_META = ("image", "kind", "severity", "ssim", "label", "composite")
_SLAB_DEPTHS = (32, 8, 1, 16)  # 3D validation images cycle through these depths (thin stacks are common)


@dataclass(frozen=True)
class ValidationSet:
    """Copies of every validation image; ``inputs[i]`` is copy i, normalised, (S, R, C)."""

    inputs: list[np.ndarray]
    image: np.ndarray  # (N,) int: which validation image
    kind: np.ndarray  # (N,) str: a corruption type, "clean" or "random"
    severity: np.ndarray  # (N,) float, nan for random combinations
    ssim: np.ndarray  # (N,)
    label: np.ndarray  # (N,) 0..100
    composite: np.ndarray  # (N,) 0..1


def build_validation_set(
    config: ValidationConfig,
    *,
    volume: bool,
    normalisation: Normalisation,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> ValidationSet:
    """The validation copies (from the cache when built before with the same settings)."""
    key = json.dumps([cache_version(), asdict(config), volume, normalisation], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / cache_version() / f"validation-{digest}.npz"
    if path is not None and path.is_file():
        return _read(path)
    shape = config.volume_shape if volume else None
    pool = SyntheticPool(VALIDATION_SEED_BASE, config.images, shape=shape, cache_dir=cache_dir)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("inputs", "image", "kind", "severity", "ssim", "label", "composite")
    }
    for index in range(config.images):
        clean = pool[index]
        evaluation_guard.assert_not_evaluation_data(np.abs(clean.image), clean.provenance)
        pe_axis = -2 if index % 2 == 0 else -1
        if volume:
            image = clean.image[: _SLAB_DEPTHS[index % len(_SLAB_DEPTHS)]]
            region: tuple[slice, ...] = (slice(None),) * 3
        else:
            image = clean.image
            region = _centre_region(clean.foreground, config.max_side)
        reference = np.abs(image)[region].astype(np.float32)
        reference = reference if volume else reference[None]
        for kind, severity, degraded in _copies(image, index, config, pe_axis):
            cut = degraded[region]
            cut = cut if volume else cut[None]
            try:
                normalised = normalise(cut, normalisation)
            except ValueError:
                continue  # a copy with nothing left to normalise by: the service would not score it either
            measures = reference_measures(reference, cut)
            rows["inputs"].append(normalised)
            rows["image"].append(index)
            rows["kind"].append(kind)
            rows["severity"].append(severity)
            rows["ssim"].append(measures["ssim"])
            rows["label"].append(100.0 * composite_from_measures(measures))
            rows["composite"].append(composite_from_measures(measures))
    built = ValidationSet(
        inputs=rows["inputs"],
        **{k: np.asarray(v) for k, v in rows.items() if k != "inputs"},
    )
    if path is not None:
        _write(path, built)
    return built


def score_copies(
    scorer: nn.Module, spec: ScorerSpec, inputs: Sequence[np.ndarray], batch_size: int = 16
) -> np.ndarray:
    """The series value of every normalised (S, R, C) copy, aggregated as the service does (nan: none)."""
    windows, owners, slices = [], [], []
    for copy, volume in enumerate(inputs):
        for window, slice_index in _windows(volume, spec):
            windows.append(window)
            owners.append(copy)
            slices.append(slice_index)
    scores = np.empty(len(windows))
    scorer.eval()
    with torch.no_grad():
        order = sorted(range(len(windows)), key=lambda i: windows[i].shape)  # batch windows of one shape
        for _, group in itertools.groupby(order, key=lambda i: windows[i].shape):
            members = list(group)
            for first in range(0, len(members), batch_size):
                chunk = members[first : first + batch_size]
                batch = torch.from_numpy(np.stack([windows[i] for i in chunk])[:, None])
                scores[chunk] = scorer(batch)[0].double().numpy()
    values = np.full(len(inputs), np.nan)
    owner_array, slice_array = np.asarray(owners), np.asarray(slices)
    for copy in range(len(inputs)):
        mine = owner_array == copy
        if not mine.any():
            continue
        if spec.kind == "patch3d":
            values[copy] = scores[mine].mean()
        else:  # mean of tiles per slice, then over slices
            per_slice = [scores[mine & (slice_array == s)].mean() for s in np.unique(slice_array[mine])]
            values[copy] = float(np.mean(per_slice))
    return values


def summarise(validation: ValidationSet, scores: np.ndarray, higher_is_better: bool) -> dict[str, Any]:
    """Spearman per group (within images and pooled) against SSIM and the label, and reader agreement."""
    oriented = scores if higher_is_better else -scores
    groups: dict[str, np.ndarray] = {}
    clean = validation.kind == CLEAN
    for kind in [*CORRUPTION_TYPES, RANDOM]:
        members = validation.kind == kind
        if members.any():
            groups[kind] = clean | members
    groups[OVERALL] = np.ones(len(scores), dtype=bool)
    summary: dict[str, Any] = {"groups": {}}
    for name, members in groups.items():
        entry: dict[str, float] = {"copies": int(members.sum())}
        for target_name in ("ssim", "label"):
            target = getattr(validation, target_name)
            within = [
                _spearman(
                    oriented[members & (validation.image == i)], target[members & (validation.image == i)]
                )
                for i in np.unique(validation.image)
            ]
            finite = [v for v in within if np.isfinite(v)]
            entry[f"srcc_{target_name}_within"] = float(np.mean(finite)) if finite else float("nan")
            entry[f"srcc_{target_name}_pooled"] = _spearman(oriented[members], target[members])
        summary["groups"][name] = entry
    agree = total = 0
    for i in np.unique(validation.image):
        rows = np.flatnonzero(validation.image == i)
        for a, b in itertools.combinations(rows, 2):
            difference = validation.composite[a] - validation.composite[b]
            if (
                abs(difference) > DEFAULT_READER.just_noticeable_difference
                and np.isfinite(oriented[[a, b]]).all()
            ):
                total += 1
                agree += int(np.sign(oriented[a] - oriented[b]) == np.sign(difference))
    summary["ranking_consensus"] = agree / total if total else float("nan")
    summary["clear_pairs"] = total
    return summary


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _copies(
    image: np.ndarray, index: int, config: ValidationConfig, pe_axis: int
) -> list[tuple[str, float, np.ndarray]]:
    copies = [(CLEAN, 0.0, np.abs(image).astype(np.float32))]
    for type_index, kind in enumerate(CORRUPTION_TYPES):
        for severity in config.severities:
            rng = np.random.default_rng([VALIDATION_SEED_BASE, index, type_index])  # same artifact, scaled
            copies.append((kind, float(severity), corrupt(image, kind, severity, rng, pe_axis)[0]))
    for combination in range(config.random_combinations):
        rng = np.random.default_rng([VALIDATION_SEED_BASE, index, 100 + combination])
        copies.append((RANDOM, float("nan"), corrupt_random(image, rng, phase_encode_axis=pe_axis)[0]))
    return copies


def _centre_region(foreground: np.ndarray, side: int) -> tuple[slice, slice]:
    """At most side x side pixels around the foreground's centre of mass, inside the image."""
    rows, cols = np.nonzero(foreground)
    centre = (rows.mean(), cols.mean()) if rows.size else (foreground.shape[0] / 2, foreground.shape[1] / 2)
    region = []
    for c, n in zip(centre, foreground.shape, strict=True):
        start = int(np.clip(round(c - side / 2), 0, max(0, n - side)))
        region.append(slice(start, start + min(side, n)))
    return region[0], region[1]


def _windows(volume: np.ndarray, spec: ScorerSpec) -> list[tuple[np.ndarray, int]]:
    """(window, first slice) of every window the service scores in a normalised (S, R, C) stack."""
    if spec.kind == "slice2d":
        padded = slices_padded(volume, spec.tile, spec.spatial_multiple)
        size, starts = slice_windows(padded, spec.tile, spec.stride)
        return [(padded[s, row : row + size[0], col : col + size[1]], s) for s, row, col in starts]
    padded = patch_padded(volume, spec.tile)
    starts = [window_starts(n, t, s) for n, t, s in zip(padded.shape, spec.tile, spec.stride, strict=True)]
    found = []
    for corner in itertools.product(*starts):
        window = padded[tuple(slice(a, a + t) for a, t in zip(corner, spec.tile, strict=True))]
        if (window > FOREGROUND_LEVEL).mean() >= MIN_FOREGROUND_FRACTION:
            found.append((window, corner[0]))
    return found


def _write(path: Path, validation: ValidationSet) -> None:
    arrays = {f"input_{i}": array for i, array in enumerate(validation.inputs)}
    fields = {f"meta_{k}": np.asarray(getattr(validation, k)) for k in _META}
    save_npz_atomically(path, arrays | fields)


def _read(path: Path) -> ValidationSet:
    with np.load(path, allow_pickle=False) as data:
        count = len(data["meta_image"])
        return ValidationSet(
            inputs=[data[f"input_{i}"] for i in range(count)],
            **{k: data[f"meta_{k}"] for k in _META},
        )
