"""The manifest the service trusts: round trip, validation that names the field, file checksums.

No torch here: the service reads manifests without it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qcgate.contract.manifest import (
    Calibration,
    InputSpec,
    Manifest,
    ManifestError,
    ModelEntry,
    OutputSpec,
    Parity,
    Provenance,
    load_manifest,
    manifest_from_dict,
    manifest_to_dict,
    new_device_uid,
    sha256_of,
    upsert_entry,
    write_manifest,
)
from qcgate.contract.preprocess import (
    content_box,
    foreground_scale,
    normalise,
    padded_length,
    patch_padded,
    window_starts,
    without_constant_border,
)


def entry(name: str = "msm", sha256: str = "0" * 64, **changes: Any) -> ModelEntry:
    base = ModelEntry(
        name=name,
        version="0.1.0",
        file=f"{name}.onnx",
        sha256=sha256,
        device_uid=new_device_uid(),
        opset=18,
        exporter="torch.onnx.export(dynamo=True), torch 2.13.0",
        input=InputSpec(
            kind="slice2d",
            tensor_name="image",
            normalisation="stack_foreground_p99",
            tile=(256, 256),
            stride=(256, 256),
            spatial_multiple=32,
        ),
        output=OutputSpec(
            tensor_name="score", meaning="masked residual", higher_is_better=False, aggregate="mean"
        ),
        calibration=Calibration.placeholder(higher_is_better=False),
        provenance=Provenance(
            data_version="synthetic-v1",
            seed=0,
            steps=100,
            git_commit="abc",
            created="2025-01-01T00:00:00+00:00",
        ),
        parity=Parity(
            atol=1e-4,
            rtol=1e-3,
            max_abs_error=1e-6,
            max_rel_error=1e-5,
            worst_ratio=0.01,
            input_shapes=((2, 1, 64, 64),),
        ),
        benchmarks={"srcc_ssim_overall": 0.9},
    )
    return dataclasses.replace(base, **changes)


def test_round_trip_through_json_is_exact(tmp_path: Path) -> None:
    manifest = Manifest((entry("msm"),))
    path = tmp_path / "manifest.json"
    write_manifest(manifest, path)
    assert load_manifest(path, verify_files=False) == manifest
    assert json.loads(path.read_text())["models"][0]["input"]["tile"] == [256, 256]


def test_every_export_gets_a_new_valid_device_uid() -> None:
    first, second = entry(), entry()
    assert first.device_uid != second.device_uid
    assert first.device_uid.startswith("1.2.826.0.1.3680043")  # pydicom's root


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("models", 0, "sha256"), "xyz", '"sha256" must be 64'),
        (("models", 0, "device_uid"), "1.2.abc", '"device_uid" must be a valid'),
        (("models", 0, "file"), "../evil.onnx", '"file" must be a bare'),
        (("models", 0, "opset"), "18", '"manifest.models[0].opset" must be an integer'),
        (("models", 0, "input", "kind"), "slice3d", '"manifest.models[0].input.kind" must be one of'),
        (("models", 0, "input", "normalisation"), "zscore", "must be one of"),
        (("models", 0, "input", "tile"), [250, 256], '"input.tile" must be positive multiples'),
        (("models", 0, "input", "stride"), [512, 256], '"input.stride" must lie between'),
        (("models", 0, "calibration", "raw"), [1.0, 1.0], "strictly increasing"),
        (("models", 0, "calibration", "quality"), [0.0, 101.0], "within 0-100"),
        (("models", 0, "calibration", "quality"), [0.0, 100.0], 'must follow "output.higher_is_better"'),
        (("models", 0, "parity", "worst_ratio"), 1.5, "exceeds the tolerance"),
        (("models", 0, "output", "higher_is_better"), "no", "must be true or false"),
        (("manifest_version",), 2, '"manifest_version" must be 1'),
    ],
)
def test_invalid_fields_are_named(path: tuple[Any, ...], value: Any, message: str) -> None:
    data = manifest_to_dict(Manifest((entry(),)))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        manifest_from_dict(data)


def test_unknown_and_missing_fields_are_refused() -> None:
    data = manifest_to_dict(Manifest((entry(),)))
    data["models"][0]["colour"] = "blue"
    with pytest.raises(ManifestError, match="unknown field.*colour"):
        manifest_from_dict(data)
    del data["models"][0]["colour"]
    del data["models"][0]["calibration"]
    with pytest.raises(ManifestError, match="lacks field.*calibration"):
        manifest_from_dict(data)


def test_a_model_listed_twice_is_refused() -> None:
    with pytest.raises(ManifestError, match="names a model twice"):
        Manifest((entry(), entry()))


def test_files_must_exist_and_match_their_checksum(tmp_path: Path) -> None:
    (tmp_path / "msm.onnx").write_bytes(b"model bytes")
    good = entry(sha256=sha256_of(tmp_path / "msm.onnx"))
    upsert_entry(tmp_path / "manifest.json", good)
    assert load_manifest(tmp_path / "manifest.json").models == (good,)
    (tmp_path / "msm.onnx").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match="does not match its sha256"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "msm.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "manifest.json")


def test_upsert_replaces_a_model_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    upsert_entry(path, entry("msm"))
    upsert_entry(
        path,
        entry(
            "rank_effnet",
            output=OutputSpec("score", "rank", True, "mean"),
            calibration=Calibration.placeholder(True),
        ),
    )
    newer = entry("msm", version="0.2.0")
    manifest = upsert_entry(path, newer)
    assert [m.name for m in manifest.models] == ["msm", "rank_effnet"]
    assert load_manifest(path, verify_files=False).models[0] == newer


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_calibration_is_monotone_clamped_and_none_until_calibrated(higher_is_better: bool) -> None:
    quality = (0.0, 30.0, 90.0, 100.0) if higher_is_better else (100.0, 90.0, 30.0, 0.0)
    calibration = Calibration(raw=(0.1, 0.2, 0.5, 0.9), quality=quality, calibrated=True, method="isotonic")
    raw = np.linspace(-1.0, 2.0, 301)
    mapped = np.array([calibration.apply(float(v)) for v in raw])
    steps = np.diff(mapped)
    assert np.all(steps >= 0) if higher_is_better else np.all(steps <= 0)
    assert mapped.min() == 0.0
    assert mapped.max() == 100.0
    assert calibration.apply(0.35) == pytest.approx(60.0)
    assert calibration.apply(float("nan")) is None
    placeholder = Calibration.placeholder(higher_is_better)
    assert not placeholder.calibrated
    assert placeholder.apply(0.5) is None


def test_normalisation_divides_by_the_foreground_99th_percentile() -> None:
    rng = np.random.default_rng(0)
    volume = rng.rayleigh(1.0, size=(4, 64, 64)).astype(np.float32)  # air
    volume[:, 16:48, 16:48] = rng.uniform(100.0, 200.0, size=(4, 32, 32))  # tissue
    scale = foreground_scale(volume)
    assert scale == pytest.approx(np.percentile(volume[:, 16:48, 16:48], 99.0), rel=1e-3)
    np.testing.assert_allclose(normalise(volume, "stack_foreground_p99"), volume / scale, rtol=1e-6)
    per_slice = normalise(volume, "slice_foreground_p99")
    assert np.allclose([np.percentile(s[16:48, 16:48], 99.0) for s in per_slice], 1.0, rtol=1e-3)
    with pytest.raises(ValueError, match="no foreground"):
        normalise(np.zeros((2, 8, 8), np.float32), "stack_foreground_p99")


def test_a_constant_border_common_to_every_slice_is_cut_off() -> None:
    volume = np.zeros((2, 10, 12), np.float32)
    volume[0, 2:5, 3:6] = 7.0  # slice 0 reaches rows 2-4, columns 3-5
    volume[1, 6, 9] = np.nan  # non-finite counts as zero: no content
    volume[1, 7, 4] = 1.0
    assert content_box(volume) == (slice(2, 8), slice(3, 6))
    assert content_box(volume[0]) == (slice(2, 5), slice(3, 6))
    assert without_constant_border(volume).shape == (2, 6, 3)
    noisy = np.random.default_rng(0).rayleigh(1.0, size=(1, 6, 6))  # air with noise: nothing to cut
    assert without_constant_border(noisy).shape == noisy.shape
    assert content_box(np.full((3, 3), 5.0)) is None
    with pytest.raises(ValueError, match="blank or constant"):
        without_constant_border(np.zeros((1, 4, 4), np.float32))


def test_windows_cover_every_voxel_at_native_size() -> None:
    assert window_starts(256, 256, 256) == [0]
    assert window_starts(100, 256, 256) == [0]
    assert window_starts(600, 256, 256) == [0, 256, 344]
    assert window_starts(176, 32, 16) == list(range(0, 145, 16))
    assert window_starts(40, 32, 16) == [0, 8]
    assert padded_length(100, 256, 32, pad_to_window=False) == 128
    assert padded_length(20, 32, 1, pad_to_window=True) == 32
    assert padded_length(600, 256, 32, pad_to_window=False) == 600


def test_patch_padding_repeats_slices_and_zeroes_rows_and_columns() -> None:
    volume = np.arange(1, 3 * 4 * 5 + 1, dtype=np.float32).reshape(3, 4, 5)
    padded = patch_padded(volume, (8, 6, 5))
    assert padded.shape == (8, 6, 5)
    np.testing.assert_array_equal(padded[:, :4], volume[[0, 1, 2, 0, 1, 2, 0, 1]])
    assert not padded[:, 4:].any()
    assert patch_padded(volume, (2, 4, 5)) is volume  # large enough: untouched
