"""Decompression bombs and lying codestreams are refused before anything large is decoded (issue 12).

Each case goes through the receiver's own path (:func:`qcgate.receiver.ingest.ingest_instance`) under
``tracemalloc``, which sees numpy's buffers and Python's: the peak of the refusal stays under
:data:`BUDGET_BYTES`, where before the fix the decoder allocated what the codestream asked for (a
195-byte JPEG 2000 frame became 33.5 MB) and pydicom inflated whatever a deflated dataset held.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from qcgate.core.errors import DecodedSizeExceeded, HeaderContradiction, InstanceRejected
from qcgate.core.settings import Settings
from qcgate.receiver.codestreams import frame_geometry
from qcgate.receiver.ingest import InstanceRecorder, ingest_instance
from qcgate.store.database import create_database_engine, session_factory, upgrade_database

BUDGET_BYTES = 24 * 1024 * 1024  # what refusing any bomb below may allocate, decoders included
MB = 1024 * 1024


@pytest.fixture
def receive(tmp_path: Path) -> Callable[..., tuple[int, int]]:
    """``receive(dataset, **settings)``: the status and the traced peak of receiving ``dataset``."""

    def run(dataset: Dataset, **overrides: object) -> tuple[int, int]:
        settings = Settings(data_dir=tmp_path / "data", min_free_disk_mb=0, **overrides)  # type: ignore[arg-type]
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_database(settings.effective_database_url)
        recorder = InstanceRecorder(
            session_factory(create_database_engine(settings.effective_database_url)), settings.spool_dir
        )
        encoded = part10(dataset)
        tracemalloc.start()
        try:
            ingest_instance(
                encoded, str(dataset.SOPClassUID), str(dataset.SOPInstanceUID), "MR1", settings, recorder
            )
            status = 0x0000
        except InstanceRejected as exc:
            status = exc.status
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return status, peak

    return run


def part10(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sample(name: str) -> Dataset:
    dataset = pydicom.dcmread(get_testdata_file(name))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def frames_of(dataset: Dataset) -> list[bytes]:
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    return [
        b"".join(fragments)
        for fragments in generate_fragmented_frames(dataset.PixelData, number_of_frames=count)
    ]


def j2k_claiming(rows: int, columns: int) -> Dataset:
    """MR_small in JPEG 2000 whose codestream's SIZ says ``rows`` x ``columns``; the header says 64x64."""
    dataset = sample("MR_small_jp2klossless.dcm")
    (frame,) = frames_of(dataset)
    siz = frame.index(b"\xff\x51")
    patched = bytearray(frame)
    struct.pack_into(">II", patched, siz + 6, columns, rows)
    dataset.PixelData = encapsulate([bytes(patched)])
    return dataset


def test_the_codestream_headers_are_read_as_the_decoders_read_them() -> None:
    for name in ("MR_small_jp2klossless.dcm", "JPEG2000.dcm", "JPEG-LL.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
        dataset = pydicom.dcmread(get_testdata_file(name))
        geometry = frame_geometry(frames_of(dataset)[0])
        assert geometry is not None
        decoded = dataset.pixel_array
        assert (geometry.rows, geometry.columns) == decoded.shape[:2], name
        assert geometry.components == int(dataset.SamplesPerPixel), name


def test_a_clean_compressed_mr_instance_is_accepted(receive: Callable[..., tuple[int, int]]) -> None:
    status, _ = receive(sample("MR_small_jp2klossless.dcm"))
    assert status == 0x0000


def test_a_jpeg_2000_frame_larger_than_its_header_is_refused_undecoded(
    receive: Callable[..., tuple[int, int]],
) -> None:
    status, peak = receive(j2k_claiming(4096, 4096))
    assert status == HeaderContradiction.status
    assert peak < BUDGET_BYTES


def test_a_jpeg_ls_frame_that_contradicts_its_header_is_refused(
    receive: Callable[..., tuple[int, int]],
) -> None:
    dataset = sample("MR_small.dcm")
    dataset.compress(JPEGLSLossless)
    (frame,) = frames_of(dataset)
    sof = frame.index(b"\xff\xf7")
    patched = bytearray(frame)
    struct.pack_into(">HH", patched, sof + 5, 2048, 2048)
    dataset.PixelData = encapsulate([bytes(patched)])
    status, peak = receive(dataset)
    assert status == HeaderContradiction.status
    assert peak < BUDGET_BYTES


def test_an_rle_frame_with_more_segments_than_its_samples_is_refused(
    receive: Callable[..., tuple[int, int]],
) -> None:
    dataset = sample("MR_small_RLE.dcm")
    (frame,) = frames_of(dataset)
    patched = bytearray(frame)
    struct.pack_into("<I", patched, 0, 9)
    dataset.PixelData = encapsulate([bytes(patched)])
    assert receive(dataset)[0] == HeaderContradiction.status


def test_more_frames_than_the_header_says_are_refused(receive: Callable[..., tuple[int, int]]) -> None:
    dataset = sample("MR_small_jp2klossless.dcm")
    (frame,) = frames_of(dataset)
    dataset.PixelData = encapsulate([frame] * 4)
    assert receive(dataset)[0] == HeaderContradiction.status


def test_pixels_that_would_decode_past_the_limit_are_refused_before_decoding(
    receive: Callable[..., tuple[int, int]],
) -> None:
    """Four 4096x4096 frames in 2 kB (header and codestreams agree) peaked at 201 MB before."""
    dataset = j2k_claiming(4096, 4096)
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = 4096, 4096, 4
    (frame,) = frames_of(dataset)
    dataset.PixelData = encapsulate([frame] * 4)
    status, peak = receive(dataset, max_decoded_mb=64)
    assert status == DecodedSizeExceeded.status
    assert peak < BUDGET_BYTES


def test_native_pixels_longer_than_the_header_implies_are_refused(
    receive: Callable[..., tuple[int, int]],
) -> None:
    dataset = sample("MR_small.dcm")
    dataset.PixelData = dataset.PixelData * 2
    assert receive(dataset)[0] == HeaderContradiction.status


def test_a_deflated_dataset_is_inflated_under_the_instance_limit(
    receive: Callable[..., tuple[int, int]],
) -> None:
    """150 MB of Pixel Data deflated into 153 kB was accepted, and the worker then spent 1.4 GB."""
    dataset = sample("MR_small.dcm")
    dataset.NumberOfFrames = 1200  # 1200 frames of 64x64x2 bytes: 9.4 MB of zeros
    dataset.PixelData = np.zeros((1200, 64, 64), np.uint16).tobytes()
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    encoded = part10(dataset)
    assert len(encoded) < 100_000, "the bomb is small on the wire"
    status, peak = receive(dataset, max_instance_mb=4)
    assert status == DecodedSizeExceeded.status
    assert peak < BUDGET_BYTES


def test_a_series_stops_growing_at_its_decoded_budget(
    receive: Callable[..., tuple[int, int]], tmp_path: Path
) -> None:
    """Each instance is small; together they would make the worker hold more than the series budget."""
    first = sample("MR_small.dcm")  # 64x64, 16 bits: 8 kB decoded
    statuses = []
    for _ in range(130):  # 1 MB holds 128 of them
        instance = first.copy()
        instance.SOPInstanceUID = generate_uid()
        instance.file_meta.MediaStorageSOPInstanceUID = instance.SOPInstanceUID
        statuses.append(receive(instance, max_series_decoded_mb=1)[0])
    assert statuses[:128] == [0x0000] * 128
    assert statuses[128:] == [DecodedSizeExceeded.status] * 2
    assert len(list((tmp_path / "data" / "spool").rglob("*.dcm"))) == 128, "a refused instance stayed"
