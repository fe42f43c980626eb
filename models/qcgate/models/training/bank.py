"""HyS-net's labelled slabs, made once per run and kept on disk: the label is the costly part.

A slab's quality label needs VIF on each of its slices (up to 0.2 s of CPU per slab), so two data
workers made 2 slabs a second while the 3D network could take 50: the trainer waited 86 % of the
time. A bank of ``DataConfig.bank_size`` slabs is made during the first pass (slab ``j`` a pure
function of the run seed and ``j``, like every sample) and read back on later passes, each pass
cutting fresh mirrored patches (:func:`~qcgate.models.training.samples.slab_patches`).

Files live at ``<cache>/<cache_version>/slabs-<digest>/<j>.npz``; the digest covers everything a
slab depends on (run seed, data settings that shape the degradation, normalisation), so a changed
setting never reads stale slabs, and files are written atomically so workers share the directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qcgate.contract.preprocess import Normalisation
from qcgate.models.code_key import cache_version
from qcgate.models.training.config import DataConfig
from qcgate.models.training.pool import CleanSource, save_npz_atomically
from qcgate.models.training.samples import labelled_slab, sample_rng

__all__ = ["SlabBank"]

_SLAB_STREAM = 30  # generator stream of bank slabs, apart from the per-sample streams


class SlabBank:
    """``data.bank_size`` labelled slabs of a run, made on first use and cached under ``cache_dir``."""

    def __init__(
        self,
        source: CleanSource,
        data: DataConfig,
        seed: int,
        method: Normalisation,
        cache_dir: Path | None,
    ) -> None:
        if data.bank_size < 1:
            raise ValueError('Argument "data.bank_size" must be at least 1 for a slab bank.')
        self.source, self.data, self.seed, self.method = source, data, int(seed), method
        name = f"slabs-{self._digest()}"
        self.directory = None if cache_dir is None else Path(cache_dir) / cache_version() / name

    def __len__(self) -> int:
        return self.data.bank_size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Slab ``index``: ``slab`` (S, R, C), ``quality``, ``snr`` and ``refused`` (guard refusals)."""
        if not 0 <= index < len(self):
            raise IndexError(f"bank index {index} outside 0..{len(self) - 1}")
        path = None if self.directory is None else self.directory / f"{index}.npz"
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    return {key: stored[key] for key in stored.files}
            except (OSError, ValueError, KeyError):
                pass  # a damaged file: make the slab again
        slab = labelled_slab(self.source, sample_rng(self.seed, _SLAB_STREAM, index), self.data, self.method)
        if path is not None:
            save_npz_atomically(path, slab)
        return slab

    def _digest(self) -> str:
        settings = asdict(self.data)
        for unrelated in ("crop", "patches_per_volume", "workers", "max_refused_fraction", "copies_per_tile"):
            settings.pop(unrelated)
        key = json.dumps(
            {"seed": self.seed, "method": self.method, "source": len(self.source), "data": settings},
            sort_keys=True,
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]
