"""The real evaluation images: every shipped source loads without the network and becomes a
conformant MR series whose geometry the service reads back as written."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage

from qcgate.bench.quality.real_images import (
    EVALUATION_KIND,
    SOURCES,
    EvaluationImage,
    crop_slices,
    evaluation_images,
)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EvaluationImage]]:
    """All sources converted into a fresh cache, with every network connection refused meanwhile."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the evaluation images must never be downloaded")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield evaluation_images(cache_dir=tmp_path_factory.mktemp("cache"))


def test_every_source_is_collected_in_order(images: list[EvaluationImage]) -> None:
    assert [image.name for image in images] == list(SOURCES)
    assert {image.anatomy for image in images} >= {"brain", "head", "shoulder", "abdomen"}


@pytest.mark.parametrize("index", range(len(SOURCES)), ids=list(SOURCES))
def test_each_image_is_a_marked_float_volume_with_real_geometry(
    images: list[EvaluationImage], index: int
) -> None:
    image = images[index]
    assert image.volume.dtype == np.float32
    assert image.volume.ndim == 3
    assert image.volume.max() > image.volume.min()
    assert min(image.volume.shape[1:]) >= 58  # dipy aniso_vox is 58x58 at 4 mm; the rest at least 64
    assert all(0.1 < s < 10.0 for s in image.spacing_mm)
    assert image.phase_encode_axis in (-2, -1)
    assert image.provenance["kind"] == EVALUATION_KIND
    assert image.provenance["name"] == image.name


@pytest.mark.parametrize("index", range(len(SOURCES)), ids=list(SOURCES))
def test_each_image_is_written_as_a_conformant_mr_series(images: list[EvaluationImage], index: int) -> None:
    image = images[index]
    files = sorted(image.series_dir.glob("*.dcm"))
    assert len(files) == image.volume.shape[0]
    with pydicom.config.strict_reading():
        datasets = [pydicom.dcmread(path) for path in files]
    assert {str(ds.SOPClassUID) for ds in datasets} == {MRImageStorage}
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    first = datasets[0]
    assert [float(v) for v in first.PixelSpacing] == pytest.approx(image.spacing_mm[1:], rel=1e-4)
    assert float(first.SliceThickness) == pytest.approx(image.spacing_mm[0], rel=1e-4)
    assert first.InPlanePhaseEncodingDirection == ("COL" if image.phase_encode_axis == -2 else "ROW")
    assert first.PatientID == "QCGATE^EVALUATION"


def test_a_second_collection_reuses_the_cache_and_gets_identical_files(
    images: list[EvaluationImage], tmp_path: Path
) -> None:
    cache = images[0].series_dir.parent.parent
    again = evaluation_images(["mr-small-head"], cache_dir=cache)[0]
    fresh = evaluation_images(["mr-small-head"], cache_dir=tmp_path)[0]
    assert np.array_equal(again.volume, fresh.volume)
    written = sorted(p.read_bytes() for p in fresh.series_dir.glob("*.dcm"))
    cached = sorted(p.read_bytes() for p in again.series_dir.glob("*.dcm"))
    assert written == cached  # seeded UIDs: the same series on every machine


def test_crop_keeps_a_central_slab_and_says_so(images: list[EvaluationImage]) -> None:
    epi = next(image for image in images if image.name == "nibabel-epi")
    slab = crop_slices(epi, 4)
    assert slab.volume.shape == (4, *epi.volume.shape[1:])
    assert np.array_equal(slab.volume, epi.volume[10:14])
    assert slab.provenance["slices"] == "10:14 of 24"
    assert crop_slices(epi, None) is epi
    with pytest.raises(ValueError, match="max_slices"):
        crop_slices(epi, 0)


def test_unknown_image_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown images"):
        evaluation_images(["no-such-scan"], cache_dir=tmp_path)
