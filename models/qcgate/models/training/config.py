"""What one training run is made of, in one dataclass per concern: data, optimisation, validation.

A run is fully described by a :class:`TrainConfig` (model name, the model's own config fields, the
data, the optimiser, the validation set) and a seed; the checkpoint records it as plain data, so a
run can be repeated from its checkpoint alone. ``--config FILE`` reads YAML or JSON with the same
keys (unknown keys are an error: a typo must not silently fall back to a default)::

    model: {base_width: 8, depth: 4}        # fields of the network's dataclass config
    variant: restoration                    # msm only: restoration | clean_to_clean | error_map
    data: {crop: 128, pool_size: 2000}
    optim: {batch_size: 8, lr: 0.001}
    validation: {images: 10}

Seeds: clean training images are drawn from ``TRAIN_SEED_BASE + seed * SEEDS_PER_RUN + i``; validation
images from ``VALIDATION_SEED_BASE + i`` whatever the run's seed, so every run is judged on the same
images and never trains on them (the ranges are disjoint for ``seed < 1000``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from qcgate.contract.preprocess import NORMALISATIONS, Normalisation
from qcgate.models.registry import config_from_dict, list_models

__all__ = [
    "MAX_RUN_SEED",
    "SEEDS_PER_RUN",
    "TRAIN_SEED_BASE",
    "VARIANTS",
    "VALIDATION_SEED_BASE",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "ValidationConfig",
    "default_config",
    "load_config",
]

TRAIN_SEED_BASE = 1_000_000_000
SEEDS_PER_RUN = 1_000_000
MAX_RUN_SEED = 1000
VALIDATION_SEED_BASE = 3_000_000_000  # above every training seed of a run seed below MAX_RUN_SEED

Variant = Literal["restoration", "clean_to_clean", "error_map"]
VARIANTS = ("restoration", "clean_to_clean", "error_map")


@dataclass
class DataConfig:
    """How training samples are drawn (see :mod:`qcgate.models.training.samples`).

    ``crop``: side of the 2D training tile, cut at native resolution (None: the scorer's own tile;
    HyS-net always trains on its own patch). ``pool_size``: clean images cached and re-corrupted every
    time they are drawn. ``volume_shape``: the clean volumes HyS-net's patches come from; ``depths``:
    how many slices of it a sample keeps (thin stacks are repeated along the slice axis to the patch, as
    the service pads them); ``bank_size``: HyS-net's labelled slabs made once per run and re-cut on
    every pass (0: a new slab for every sample; :mod:`qcgate.models.training.bank`). Degradations:
    ``clean_fraction`` of the samples stay clean, ``single_fraction`` of the rest get one corruption of
    a uniformly chosen type, the others a random combination of 1-5 types; ``base_noise_probability`` of
    the degraded samples first get thermal noise at an SNR log-uniform in ``base_noise_snr`` (scans are
    never noiseless). ``reader_flip_probability``: rank_effnet's simulated reader (0: the consensus
    reader), judging every pair of
    ``copies_per_tile`` degraded copies of one tile. ``max_refused_fraction``: the share of draws
    the evaluation-data guard may refuse (fingerprint matches of synthetic data, never trained on)
    before the run stops as a systematic match.
    """

    crop: int | None = None
    pool_size: int = 2000
    volume_shape: tuple[int, int, int] = (32, 64, 64)
    depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 32, 32)
    patches_per_volume: int = 4
    bank_size: int = 0
    clean_fraction: float = 0.15
    single_fraction: float = 0.5
    max_corruptions: int = 5
    base_noise_probability: float = 0.5
    base_noise_snr: tuple[float, float] = (15.0, 100.0)
    reader_flip_probability: float = 0.0
    copies_per_tile: int = 3
    max_refused_fraction: float = 0.02
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("clean_fraction", "single_fraction", "base_noise_probability", "max_refused_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'Argument "data.{name}" must lie in [0, 1].')
        if not 0.0 <= self.reader_flip_probability <= 0.5:
            raise ValueError('Argument "data.reader_flip_probability" must lie in [0, 0.5].')
        if (
            min(self.pool_size, self.patches_per_volume, self.copies_per_tile - 1) < 1
            or min(self.workers, self.bank_size) < 0
        ):
            raise ValueError(
                'Arguments "data.pool_size" and "data.patches_per_volume" must be at least 1, '
                '"data.copies_per_tile" at least 2, "data.workers" and "data.bank_size" at least 0.'
            )
        if not 1 <= self.max_corruptions:
            raise ValueError('Argument "data.max_corruptions" must be at least 1.')
        low, high = self.base_noise_snr
        if not 0 < low <= high:
            raise ValueError('Argument "data.base_noise_snr" must be (low, high) with 0 < low <= high.')
        if not self.depths or min(self.depths) < 1 or max(self.depths) > self.volume_shape[0]:
            raise ValueError('Argument "data.depths" must lie between 1 and "data.volume_shape[0]".')


@dataclass
class OptimConfig:
    """Adam, a linear warm-up, then constant (``--minutes``) or cosine to 10 % (``--steps``).

    ``lr`` is the network's learning rate; ``head_lr`` rank_effnet's pairwise classifier's
    (the paper: 1e-4 and 1e-3; scaled by 10 for CPU runs of a few thousand steps, ratio kept).
    ``snr_weight``: HyS-net's auxiliary SNR loss weight.
    """

    batch_size: int = 8
    lr: float = 1e-3
    head_lr: float = 1e-2
    weight_decay: float = 0.0
    warmup_steps: int = 50
    grad_clip: float = 1.0
    snr_weight: float = 0.1
    threads: int | None = None  # torch intra-op threads; None: the cores left by the data workers


@dataclass
class ValidationConfig:
    """Held-out synthetic images corrupted like the quality benchmark corrupts the real ones.

    Every image is scored clean, at each of ``severities`` for every corruption type, and under
    ``random_combinations`` random combinations; 2D images are cut to at most ``max_side`` pixels
    per axis after corruption (one tile, as the service scores it), 3D ones are ``volume_shape``.
    """

    images: int = 10
    severities: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    random_combinations: int = 4
    max_side: int = 256
    volume_shape: tuple[int, int, int] = (32, 64, 64)
    batch_size: int = 16


@dataclass
class TrainConfig:
    """One training run. ``model`` holds fields of the network's dataclass config."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    variant: Variant = "restoration"
    normalisation: Normalisation = "stack_foreground_p99"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if self.name not in list_models():
            raise ValueError(f'Argument "name" must be one of {list_models()}, got {self.name!r}.')
        if self.variant not in VARIANTS:
            raise ValueError(f'Argument "variant" must be one of {VARIANTS}.')
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f'Argument "normalisation" must be one of {NORMALISATIONS}.')

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Per-model defaults: what `python -m qcgate.models.train NAME` trains without a --config.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "msm": {"data": {"crop": 128}, "optim": {"batch_size": 8, "lr": 1e-3}},
    "rank_effnet": {"data": {"crop": 128}, "optim": {"batch_size": 8, "lr": 1e-3, "head_lr": 1e-2}},
    "hysnet": {"optim": {"batch_size": 4, "lr": 1e-3}},  # 4 volumes x 4 patches per step
}


def default_config(name: str) -> TrainConfig:
    return load_config(name, {})


def load_config(name: str, source: Path | dict[str, Any] | None) -> TrainConfig:
    """The model's defaults updated by ``source`` (a YAML/JSON file or a dict), validated."""
    overrides: dict[str, Any]
    if source is None:
        overrides = {}
    elif isinstance(source, dict):
        overrides = source
    else:
        text = Path(source).read_text()
        overrides = json.loads(text) if Path(source).suffix == ".json" else (yaml.safe_load(text) or {})
        if not isinstance(overrides, dict):
            raise ValueError(f"{source}: a training config must be a mapping")
    merged = _merge(_DEFAULTS.get(name, {}), overrides)
    sections = {"data": DataConfig, "optim": OptimConfig, "validation": ValidationConfig}
    unknown = sorted(set(merged) - {"model", "variant", "normalisation", "name", *sections})
    if unknown:
        raise ValueError(f"unknown training config key(s): {', '.join(unknown)}")
    if merged.get("name", name) != name:
        raise ValueError(f'the config is for "{merged["name"]}", not "{name}"')
    built = {key: config_from_dict(cls, merged.get(key, {})) for key, cls in sections.items()}
    return TrainConfig(
        name=name,
        model=dict(merged.get("model", {})),
        variant=merged.get("variant", "restoration"),
        normalisation=merged.get("normalisation", "stack_foreground_p99"),
        **built,
    )


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
