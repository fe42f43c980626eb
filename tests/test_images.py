"""The image endpoints in-process on a seeded store whose series are real DICOM files in the spool:
slices by InstanceNumber, windowed from the header or robustly, query overrides, multi-stack series,
the mosaic and its disk cache, the images role, and the problems (unknown, pruned, no images)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from qcgate.imaging.render import (
    Window,
    header_window,
    mosaic,
    mosaic_layout,
    png_grey,
    robust_window,
    windowed,
)
from qcgate.store.repository import ReceivedInstance, record_instance, series_by_uid
from qcgate.store.spool import instance_path
from tests.page_store import (
    AUTO_UID,
    HEADER_UID,
    HEADER_WINDOW,
    NO_IMAGES_UID,
    PRUNED_UID,
    SLICES,
    STUDY_UID,
    T0,
    UNKNOWN_UID,
    PageApp,
    png_pixels,
)

TOKENS = {role: f"{role}-page-token-0123456789" for role in ("read", "images")}


@pytest.fixture
def page(make_app: Callable[..., PageApp]) -> PageApp:
    return make_app()


def spooled_slice(settings: Any, series_uid: str, number: int) -> pydicom.Dataset:
    folder = settings.spool_dir / STUDY_UID / series_uid
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        if int(ds.InstanceNumber) == number:
            return ds
    raise AssertionError(f"no slice {number}")


def decoded(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    ours = png_pixels(response.content)
    pillow = np.asarray(Image.open(io.BytesIO(response.content)))  # an independent decoder agrees
    assert np.array_equal(ours, pillow)
    return ours


# the renderer


def test_png_round_trips_through_an_independent_decoder() -> None:
    image = np.arange(60 * 70, dtype=np.uint32).reshape(60, 70).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_grey(image)))), image)
    with pytest.raises(ValueError, match="2D uint8"):
        png_grey(np.zeros((4, 4), dtype=np.float32))


def test_windowing_maps_the_window_ends_to_black_and_white() -> None:
    pixels = np.array([[0.0, 800.0, 1000.0, 1200.0, 5000.0]])
    assert windowed(pixels, Window(1000.0, 400.0)).tolist() == [[0, 0, 127, 255, 255]]
    with pytest.raises(ValueError, match="positive width"):
        Window(0.0, 0.0)


def test_the_robust_window_ignores_a_few_hot_voxels() -> None:
    voxels = np.random.default_rng(0).uniform(0, 100, (4, 64, 64)).astype(np.float32)
    voxels[0, 0, 0] = voxels[1, 2, 2] = 1e6
    window = robust_window(voxels)
    assert 40 < window.level < 60
    assert 90 < window.window < 100
    assert robust_window(np.full((2, 4, 4), 7.0)).window == 1.0


def test_the_header_window_is_the_first_of_several_and_a_bad_one_is_none() -> None:
    ds = pydicom.Dataset()
    ds.WindowCenter, ds.WindowWidth = ["40", "400"], ["80", "2000"]
    assert header_window(ds) == Window(40.0, 80.0)
    ds.WindowWidth = "0"
    assert header_window(ds) is None


def test_a_mosaic_tiles_every_slice_shrunk_in_order() -> None:
    voxels = np.stack([np.full((256, 200), float(k)) for k in range(10)]).astype(np.float32)
    layout = mosaic_layout(10, 256, 200)
    assert (layout.columns, layout.rows, layout.factor, layout.tile_width, layout.tile_height) == (
        4,
        3,
        2,
        100,
        128,
    )
    image = mosaic(voxels, Window(4.5, 9.0))
    assert image.shape == (3 * 128, 4 * 100)
    tile_means = [
        image[(k // 4) * 128 : (k // 4 + 1) * 128, (k % 4) * 100 : (k % 4 + 1) * 100].mean()
        for k in range(10)
    ]
    assert tile_means == sorted(tile_means)
    assert tile_means[0] == 0
    assert tile_means[-1] == 255
    assert image[2 * 128 :, 2 * 100 :].max() == 0, "cells past the last slice stay black"


# the endpoints


def test_a_slice_is_windowed_from_its_header(page: PageApp) -> None:
    pixels = decoded(page.client.get(f"/api/v1/series/{HEADER_UID}/slices/5.png"))
    ds = spooled_slice(page.settings, HEADER_UID, 5)
    expected = windowed(ds.pixel_array.astype(np.float32), Window(*HEADER_WINDOW))
    assert pixels.shape == (64, 64)
    assert np.array_equal(pixels, expected)


def test_query_window_and_level_override_the_header(page: PageApp) -> None:
    path = f"/api/v1/series/{HEADER_UID}/slices/5.png"
    pixels = decoded(page.client.get(path, params={"window": 4000, "level": 2000}))
    ds = spooled_slice(page.settings, HEADER_UID, 5)
    assert np.array_equal(pixels, windowed(ds.pixel_array.astype(np.float32), Window(2000.0, 4000.0)))
    assert not np.array_equal(pixels, decoded(page.client.get(path)))


def test_without_a_header_window_the_robust_percentiles_are_used(page: PageApp) -> None:
    info = page.client.get(f"/api/v1/series/{AUTO_UID}/images").json()
    axial = next(stack for stack in info["stacks"] if stack["label"] == "axial")
    assert axial["window_from_header"] is False
    assert axial["slices"] == list(range(1, SLICES + 1))
    pixels = decoded(page.client.get(f"/api/v1/series/{AUTO_UID}/slices/6.png"))
    assert pixels.min() == 0, "the robust window spans the image's range"
    assert pixels.max() == 255


def test_a_multi_stack_series_lists_its_stacks_and_serves_each(page: PageApp) -> None:
    info = page.client.get(f"/api/v1/series/{AUTO_UID}/images").json()
    labels = [stack["label"] for stack in info["stacks"]]
    assert sorted(labels) == ["axial", "sagittal"]
    sagittal = labels.index("sagittal")
    assert info["stacks"][sagittal]["slices"] == [101, 102, 103]
    assert info["default_stack"] == labels.index("axial"), "the volume, not the 3-slice stack"
    assert decoded(page.client.get(f"/api/v1/series/{AUTO_UID}/slices/102.png")).shape == (64, 64)
    explicit = page.client.get(f"/api/v1/series/{AUTO_UID}/slices/102.png", params={"stack": sagittal})
    assert decoded(explicit).shape == (64, 64)
    wrong_stack = page.client.get(f"/api/v1/series/{AUTO_UID}/slices/102.png", params={"stack": 1 - sagittal})
    assert wrong_stack.status_code == 404
    assert "InstanceNumber 102" in wrong_stack.json()["detail"]
    mosaic_3 = decoded(page.client.get(f"/api/v1/series/{AUTO_UID}/mosaic.png", params={"stack": sagittal}))
    layout = mosaic_layout(3, 64, 64)
    assert mosaic_3.shape == (layout.rows * 64, layout.columns * 64)
    assert page.client.get(f"/api/v1/series/{AUTO_UID}/mosaic.png", params={"stack": 2}).status_code == 404


def test_the_mosaic_holds_every_slice_and_is_cached_per_revision(page: PageApp) -> None:
    path = f"/api/v1/series/{HEADER_UID}/mosaic.png"
    first = page.client.get(path)
    pixels = decoded(first)
    layout = mosaic_layout(SLICES, 64, 64)
    assert pixels.shape == (layout.rows * layout.tile_height, layout.columns * layout.tile_width)
    ds = spooled_slice(page.settings, HEADER_UID, 1)
    assert np.array_equal(
        pixels[:64, :64], windowed(ds.pixel_array.astype(np.float32), Window(*HEADER_WINDOW))
    )
    cached = list((page.settings.data_dir / "cache" / "images" / HEADER_UID).glob("r*/mosaic-*.png"))
    assert len(cached) == 1
    cached[0].write_bytes(png_grey(np.full((2, 2), 9, dtype=np.uint8)))  # proves the next answer is the file
    assert decoded(page.client.get(path)).tolist() == [[9, 9], [9, 9]]
    # a new instance is a new revision: drawn afresh, the old revision's files removed
    spool = page.settings.spool_dir / STUDY_UID / HEADER_UID
    extra = pydicom.dcmread(next(spool.glob("*.dcm")))
    extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = f"{HEADER_UID}.77"
    extra.InstanceNumber = 77
    extra.ImagePositionPatient = [0, 0, 500]
    target = instance_path(page.settings.spool_dir, STUDY_UID, HEADER_UID, extra.SOPInstanceUID)
    extra.save_as(target, enforce_file_format=True)
    with page.sessions.begin() as session:
        received = ReceivedInstance(
            study_instance_uid=STUDY_UID,
            series_instance_uid=HEADER_UID,
            sop_instance_uid=extra.SOPInstanceUID,
            sop_class_uid=extra.SOPClassUID,
            transfer_syntax_uid=extra.file_meta.TransferSyntaxUID,
            modality="MR",
            station_name="QCGATE",
            series_description="t1_mprage_tra",
            scored=True,
        )
        record_instance(session, received, str(target.relative_to(page.settings.spool_dir)), 1, "MR1", T0)
    fresh = decoded(page.client.get(path))
    assert fresh.shape != (2, 2)
    assert decoded(page.client.get(f"/api/v1/series/{HEADER_UID}/slices/77.png")).shape == (64, 64)
    revisions = [p.name for p in (page.settings.data_dir / "cache" / "images" / HEADER_UID).iterdir()]
    assert len(revisions) == 1


def test_images_need_the_images_role(make_app: Callable[..., PageApp]) -> None:
    clients = {f"{role}-desk": {"token": token, "role": role} for role, token in TOKENS.items()}
    page = make_app(api_clients=clients)
    for path in (
        f"/api/v1/series/{HEADER_UID}/mosaic.png",
        f"/api/v1/series/{HEADER_UID}/slices/1.png",
        f"/api/v1/series/{HEADER_UID}/images",
    ):
        assert page.client.get(path).status_code == 401
        read = page.client.get(path, headers={"Authorization": f"Bearer {TOKENS['read']}"})
        assert read.status_code == 403
        assert "needs images" in read.json()["detail"]
        images = page.client.get(path, headers={"Authorization": f"Bearer {TOKENS['images']}"})
        assert images.status_code == 200, images.text


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        (f"/api/v1/series/{UNKNOWN_UID}/mosaic.png", 404, "no series"),
        (f"/api/v1/series/{UNKNOWN_UID}/slices/1.png", 404, "no series"),
        (f"/api/v1/series/{HEADER_UID}/slices/99.png", 404, "InstanceNumber 99"),
        (f"/api/v1/series/{PRUNED_UID}/mosaic.png", 410, "pruned"),
        (f"/api/v1/series/{PRUNED_UID}/slices/1.png", 410, "pruned"),
        (f"/api/v1/series/{NO_IMAGES_UID}/mosaic.png", 404, "no MR images"),
        (f"/api/v1/series/{HEADER_UID}/mosaic.png?window=0", 422, "not valid"),
        (f"/api/v1/series/{HEADER_UID}/mosaic.png?window=nan", 422, "not valid"),
        (f"/api/v1/series/{HEADER_UID}/slices/1.png?level=inf", 422, "not valid"),
        (f"/api/v1/series/{HEADER_UID}/slices/x.png", 422, "not valid"),
    ],
)
def test_image_problems(page: PageApp, path: str, status: int, words: str) -> None:
    response = page.client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]


def test_pixels_gone_from_the_spool_without_a_prune_record_are_a_410(page: PageApp) -> None:
    for path in (page.settings.spool_dir / STUDY_UID / AUTO_UID).glob("*.dcm"):
        path.unlink()
    response = page.client.get(f"/api/v1/series/{AUTO_UID}/mosaic.png")
    assert response.status_code == 410
    assert "gone from the spool" in response.json()["detail"]


def test_a_series_pruned_after_its_images_were_shown_keeps_no_cached_pixels(page: PageApp) -> None:
    assert page.client.get(f"/api/v1/series/{HEADER_UID}/mosaic.png").status_code == 200
    cache = page.settings.data_dir / "cache" / "images" / HEADER_UID
    assert any(cache.rglob("*.png"))
    with page.sessions.begin() as session:
        series = series_by_uid(session, HEADER_UID)
        assert series is not None
        series.pixels_pruned_at = datetime.now(UTC)
    response = page.client.get(f"/api/v1/series/{HEADER_UID}/mosaic.png")
    assert response.status_code == 410
    assert not cache.exists(), "the cached PNGs go with the pixels"
