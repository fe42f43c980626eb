"""torch Datasets over :mod:`qcgate.models.training.samples`: sample ``i`` is a pure function of (seed, i).

Map-style and indexed by the sample's position in the run, so a DataLoader gives the same batches in
the same order with 0, 1 or more worker processes, and a run is repeatable from its seed alone.
Each dataset draws its clean images from a :class:`~qcgate.models.training.pool.CleanSource` (the cached
synthetic pool in training, a stand-in in tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from qcgate.models.training.bank import SlabBank
from qcgate.models.training.config import TrainConfig
from qcgate.models.training.pool import CleanSource
from qcgate.models.training.samples import (
    labelled_slab,
    ranking_sample,
    restoration_sample,
    sample_rng,
    slab_patches,
)

__all__ = ["TrainingSamples", "make_loader"]

_STREAM = {"msm": 1, "rank_effnet": 2, "hysnet": 3}  # separate sample streams per model for one seed


class TrainingSamples(Dataset[dict[str, torch.Tensor]]):
    """``length`` samples of the model ``config.name`` trains on.

    ``tile``: the 2D tile's side (``crop``) or HyS-net's 3D patch; ``bank``: HyS-net's cached
    labelled slabs, sample ``i`` cutting slab ``i mod len(bank)`` (None: a new slab per sample).
    """

    def __init__(
        self,
        config: TrainConfig,
        source: CleanSource,
        seed: int,
        tile: tuple[int, ...],
        length: int,
        bank: SlabBank | None = None,
    ) -> None:
        self.config, self.source, self.seed, self.tile, self.length = config, source, seed, tile, length
        self.bank = bank

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        config, data = self.config, self.config.data
        rng = sample_rng(self.seed, _STREAM[config.name], index)
        sample: dict[str, Any]
        if config.name == "msm":
            sample = restoration_sample(
                self.source, rng, data, self.tile[0], config.normalisation, config.variant
            )
        elif config.name == "rank_effnet":
            sample = ranking_sample(self.source, rng, data, self.tile[0], config.normalisation)
        else:
            sample = self._patch_sample(index, rng)
        return {key: torch.as_tensor(np.asarray(value)) for key, value in sample.items()}

    def _patch_sample(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Patches of a labelled slab; guard refusals count once, on the pass that made the slab."""
        if self.bank is None:
            slab = labelled_slab(self.source, rng, self.config.data, self.config.normalisation)
        else:
            slab = self.bank[index % len(self.bank)]
        patches = slab_patches(slab, self.tile, self.config.data.patches_per_volume, rng)
        first_pass = self.bank is None or index < len(self.bank)
        return {**patches, "refused": np.int64(slab["refused"] if first_pass else 0)}


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
