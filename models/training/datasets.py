"""torch Datasets over :mod:`models.training.samples`: sample ``i`` is a pure function of (seed, i).

Map-style and indexed by the sample's position in the run, so a DataLoader gives the same batches in
the same order with 0, 1 or more worker processes, and a run is repeatable from its seed alone.
Each dataset draws its clean images from a :class:`~models.training.pool.CleanSource` (the cached
synthetic pool in training, a stand-in in tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from models.training.config import TrainConfig
from models.training.pool import CleanSource
from models.training.samples import patch_sample, ranking_sample, restoration_sample, sample_rng

__all__ = ["TrainingSamples", "make_loader"]

_STREAM = {"msm": 1, "rank_effnet": 2, "hysnet": 3}  # separate sample streams per model for one seed


class TrainingSamples(Dataset[dict[str, torch.Tensor]]):
    """``length`` samples of the model ``config.name`` trains on; ``crop`` is the tile or patch side."""

    def __init__(self, config: TrainConfig, source: CleanSource, seed: int, crop: int, length: int) -> None:
        self.config, self.source, self.seed, self.crop, self.length = config, source, seed, crop, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        config, data = self.config, self.config.data
        rng = sample_rng(self.seed, _STREAM[config.name], index)
        sample: dict[str, Any]
        if config.name == "msm":
            sample = restoration_sample(
                self.source, rng, data, self.crop, config.normalisation, config.variant
            )
        elif config.name == "rank_effnet":
            sample = ranking_sample(self.source, rng, data, self.crop, config.normalisation)
        else:
            sample = patch_sample(self.source, rng, data, self.crop, config.normalisation)
        return {key: torch.as_tensor(np.asarray(value)) for key, value in sample.items()}


def make_loader(
    dataset: TrainingSamples, batch_size: int, workers: int
) -> DataLoader[dict[str, torch.Tensor]]:
    """Batches in index order; ``workers`` processes each make whole samples (one torch thread each)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        worker_init_fn=_single_thread if workers else None,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
        drop_last=True,
    )


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)
