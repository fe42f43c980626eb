"""A cache of clean synthetic images: synthesised once, re-corrupted every time they are drawn.

Synthesis costs 20-40 ms of CPU per slice and about 0.1 s per 32x64x64 volume, several times what
corrupting one costs, so a run draws its clean images from a fixed pool of seeds and keeps each one
on disk the first time it is made: ``<cache>/<cache_version>/<kind>/<seed>.npz`` holding the complex
image, the foreground and the provenance. Files are written atomically, so data-loader workers (and
concurrent runs) can fill one cache together; a file is never trusted across data versions because
the version is part of its path.

:class:`CleanImage` is what every sample starts from. Anything that returns one (a test's stand-in
included) can feed the training data through :class:`CleanSource`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qcgate.models.code_key import cache_version
from qcgate.models.synthesis import synthesize_slice, synthesize_volume

__all__ = ["DEFAULT_CACHE_DIR", "CleanImage", "CleanSource", "SyntheticPool", "save_npz_atomically"]

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[3] / "runs" / "cache"  # models/runs, beside the package


@dataclass(frozen=True)
class CleanImage:
    """A clean image: complex (R, C) or (S, R, C), its foreground and its provenance."""

    image: np.ndarray
    foreground: np.ndarray
    provenance: dict[str, Any]

    @property
    def magnitude(self) -> np.ndarray:
        return np.abs(self.image).astype(np.float32)


class CleanSource(Protocol):
    """Clean images by index; ``len`` of them."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> CleanImage: ...


class SyntheticPool:
    """``size`` clean synthetic slices (``shape`` None) or volumes of ``shape``, seeds ``first_seed + i``."""

    def __init__(
        self,
        first_seed: int,
        size: int,
        *,
        shape: tuple[int, int, int] | None = None,
        cache_dir: Path | None = DEFAULT_CACHE_DIR,
    ) -> None:
        if size < 1:
            raise ValueError('Argument "size" must be at least 1.')
        self.first_seed, self.size, self.shape = int(first_seed), int(size), shape
        kind = "slice" if shape is None else "volume-" + "x".join(str(n) for n in shape)
        self.directory = None if cache_dir is None else Path(cache_dir) / cache_version() / kind

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> CleanImage:
        if not 0 <= index < self.size:
            raise IndexError(f"pool index {index} outside 0..{self.size - 1}")
        seed = self.first_seed + int(index)
        path = None if self.directory is None else self.directory / f"{seed}.npz"
        if path is not None and path.is_file():
            try:
                return _read(path)
            except (OSError, ValueError, KeyError):
                pass  # a damaged file (a run killed mid-write on another filesystem): make it again
        made = synthesize_slice(seed) if self.shape is None else synthesize_volume(seed, shape=self.shape)
        clean = CleanImage(made.image, made.foreground, made.provenance)
        if path is not None:
            _write(path, clean)
        return clean

    def fill(self) -> int:
        """Synthesise every missing image now (before training, or in parallel by hand); returns how many."""
        missing = [i for i in range(self.size) if self.directory is None or not self._path(i).is_file()]
        for index in missing:
            self[index]
        return len(missing)

    def _path(self, index: int) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.first_seed + index}.npz"


def _read(path: Path) -> CleanImage:
    with np.load(path, allow_pickle=False) as data:
        return CleanImage(
            image=data["image"],
            foreground=data["foreground"],
            provenance=json.loads(str(data["provenance"])),
        )


def _write(path: Path, clean: CleanImage) -> None:
    save_npz_atomically(
        path,
        {
            "image": clean.image.astype(np.complex64),
            "foreground": clean.foreground,
            "provenance": np.array(json.dumps(clean.provenance)),
        },
    )


def save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as stream:
        np.savez(stream, **arrays)
    os.replace(stream.name, path)
