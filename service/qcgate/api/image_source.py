"""A series' pixels for the image endpoints: decoded once, kept briefly, rendered PNGs cached on disk.

Reading and stacking 176 instances takes a few hundred milliseconds; a person scrolling through
slices asks for one every few tens. So the stacks of the last few series shown stay in memory (keyed
by series and revision: a new instance or a re-score makes a new revision, never a stale image), and
every PNG rendered is written under ``<data_dir>/cache/images/<series>/r<revision>/``, so a mosaic
asked for again is a file read. Old revisions' folders are removed when a newer one is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from fastapi import HTTPException
from sqlalchemy.orm import Session

from qcgate.assessment.pipeline import read_datasets
from qcgate.core.errors import NotAssessable, NotFound
from qcgate.core.settings import Settings
from qcgate.imaging.render import MosaicLayout, Window, header_window, mosaic_layout, robust_window
from qcgate.imaging.volume import Stack, build_stacks
from qcgate.store.repository import instance_paths, series_by_uid

KEPT_SERIES = 3  # decoded series held in memory (a 176x256x256 series is 46 MB as float32)


@dataclass(frozen=True)
class ShownStack:
    """One stack as the page shows it: voxels, the header's window (else a robust one), the layout of
    its mosaic."""

    stack: Stack
    window: Window
    window_from_header: bool

    @property
    def layout(self) -> MosaicLayout:
        count, rows, columns = self.stack.voxels.shape
        return mosaic_layout(count, rows, columns)

    def index_of(self, number: int) -> int | None:
        """The voxel index of the slice the console calls ``number`` (InstanceNumber), if present."""
        for index in range(self.stack.voxels.shape[0]):
            if self.stack.slice_number(index) == number:
                return index
        return None


@dataclass(frozen=True)
class SeriesImages:
    series_uid: str
    revision: int
    stacks: tuple[ShownStack, ...]

    def default_stack(self) -> int:
        """The stack shown when none is asked for: the one with most slices (the volume, not a localizer)."""
        return max(range(len(self.stacks)), key=lambda i: self.stacks[i].stack.voxels.shape[0])


class ImageSource:
    """Loads series' stacks (a small LRU in memory) and caches rendered PNGs on disk."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache_dir = settings.image_cache_dir
        self._kept: OrderedDict[tuple[str, int], SeriesImages] = OrderedDict()
        self._lock = threading.Lock()

    def current(self, session: Session, series_uid: str) -> tuple[int, list[Path]]:
        """The series' revision and its image files; 404 unknown, 410 pruned, 404 without images."""
        series = series_by_uid(session, series_uid)
        if series is None:
            raise NotFound(f"no series {series_uid}")
        if series.pixels_pruned_at is not None:
            shutil.rmtree(self.cache_dir / series_uid, ignore_errors=True)  # no pixels outlive the prune
            raise HTTPException(
                410, f"the series' pixels were pruned on {series.pixels_pruned_at:%Y-%m-%d} (retention)"
            )
        scored = self.settings.scored_sop_classes
        files = [
            self.settings.spool_dir / p for p, sop in instance_paths(session, series.id) if sop in scored
        ]
        if not files:
            raise NotFound(f"series {series_uid} has no MR images to show")
        return series.revision, files

    def images(self, series_uid: str, revision: int, files: list[Path]) -> SeriesImages:
        key = (series_uid, revision)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        loaded = _load(series_uid, revision, files)
        with self._lock:
            self._kept[key] = loaded
            while len(self._kept) > KEPT_SERIES:
                self._kept.popitem(last=False)
        return loaded

    def png(self, series_uid: str, revision: int, name: str, render: Callable[[], bytes]) -> bytes:
        """The cached PNG ``name`` of this revision, rendered (and written atomically) when missing."""
        folder = self.cache_dir / series_uid / f"r{revision}"
        path = folder / f"{name}.png"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        data = render()
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".png-", suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
        for old in folder.parent.glob("r*"):
            if old != folder and old.name[1:].isdigit() and int(old.name[1:]) < revision:
                shutil.rmtree(old, ignore_errors=True)
        return data


def _load(series_uid: str, revision: int, files: list[Path]) -> SeriesImages:
    try:
        datasets = read_datasets(files)
    except FileNotFoundError as exc:  # retention removed them between the query and the read
        raise HTTPException(410, "the series' pixels are gone from the spool (retention)") from exc
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise HTTPException(409, f"the series' images cannot be read: {type(exc).__name__}") from exc
    try:
        stacks = build_stacks(datasets)
    except NotAssessable as exc:
        raise HTTPException(409, f"the series cannot be shown as images: {exc}") from exc
    by_uid = {str(ds.get("SOPInstanceUID", "")): ds for ds in datasets}
    shown = []
    for stack in stacks:
        first = by_uid.get(stack.sop_instance_uids[0])
        window = header_window(first) if first is not None else None
        shown.append(ShownStack(stack, window or robust_window(stack.voxels), window is not None))
    return SeriesImages(series_uid, revision, tuple(shown))
