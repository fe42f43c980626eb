"""Learned metrics in the service: tiny untrained networks exported to ONNX, scored through OnnxMetric.

Known answers come from running the same ONNX session by hand on the windows the documented tiling
rule names; the networks' weights are random, so only the plumbing is under test here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")

from qcgate.contract.manifest import Calibration, ManifestError, ModelEntry, load_manifest  # noqa: E402
from qcgate.contract.preprocess import FOREGROUND_LEVEL, MIN_FOREGROUND_FRACTION, normalise  # noqa: E402
from qcgate.core.errors import NotAssessable  # noqa: E402
from qcgate.core.settings import Settings  # noqa: E402
from qcgate.imaging.volume import Stack  # noqa: E402
from qcgate.metrics import learned  # noqa: E402
from qcgate.metrics.base import Algorithm  # noqa: E402
from qcgate.metrics.classic import ClassicMetrics  # noqa: E402
from qcgate.metrics.learned import CPU, CUDA, OnnxMetric, choose_providers, load_learned_suites  # noqa: E402
from qcgate.metrics.registry import load_suites  # noqa: E402
from qcgate.models.registry import list_models  # noqa: E402
from tests.tiny_models import export_tiny_models  # noqa: E402

pytestmark = pytest.mark.slow  # every test needs the tiny models exported to ONNX: about 17 s

MODELS = list_models()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    export_tiny_models(out)
    return out


def entry_of(model_dir: Path, name: str) -> ModelEntry:
    return next(m for m in load_manifest(model_dir / "manifest.json").models if m.name == name)


def phantom(shape: tuple[int, int, int], seed: int = 0, blank: tuple[int, ...] = ()) -> Stack:
    """A textured ellipsoid in Rayleigh noise, (S, R, C), scaled like a scanner's integers."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = (grid[0] / 1.2) ** 2 + (grid[1] / 0.8) ** 2 + (grid[2] / 0.7) ** 2 <= 1.0
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    volume = 800.0 * inside * (1.0 + 2.0 * texture) + rng.rayleigh(20.0, size=shape)
    volume[list(blank)] = 0.0
    uids = tuple(f"1.2.3.{i}" for i in range(shape[0]))
    return Stack(volume.astype(np.float32), (1.0, 1.0, 1.0), None, uids, "axial")


def direct_scores(model_dir: Path, entry: ModelEntry, windows: np.ndarray) -> np.ndarray:
    """The session run by hand: (N, 1, *window) float32 -> (N,) scores."""
    session = ort.InferenceSession(str(model_dir / entry.file), providers=[CPU])
    return session.run(["score"], {entry.input.tensor_name: windows.astype(np.float32)})[0]


def make_metric(model_dir: Path, name: str, batch_size: int | None = None) -> OnnxMetric:
    return OnnxMetric(entry_of(model_dir, name), model_dir, threads=1, batch_size=batch_size)


def test_one_suite_per_model_named_and_versioned_by_its_manifest(model_dir: Path) -> None:
    suites = load_learned_suites(model_dir / "manifest.json", threads=1)
    assert [s.name for s in suites] == MODELS
    for suite in suites:
        assert suite.version == f"0.0.1+{suite.entry.sha256[:12]}"
        assert suite.providers == [CPU]
        assert suite.algorithm == Algorithm(suite.name, "0.0.1", suite.entry.device_uid, suite.entry.sha256)
    assert len({suite.entry.device_uid for suite in suites}) == len(suites)


@pytest.mark.parametrize("name", MODELS)
def test_stack_gets_a_value_and_per_slice_scores(model_dir: Path, name: str) -> None:
    metric = make_metric(model_dir, name)
    stack = phantom((20, 40, 48), blank=(19,)) if name == "hysnet" else phantom((6, 40, 48), blank=(5,))
    (result,) = metric.evaluate(stack)
    assert result.name == name
    assert result.higher_is_better is metric.entry.output.higher_is_better
    assert result.quality is None  # uncalibrated
    per_slice = np.array(result.per_slice)
    assert per_slice.shape == (stack.voxels.shape[0],)
    if name == "hysnet":
        assert np.all(np.isfinite(per_slice))  # the last patch still covers the blank slice
    else:
        assert np.isnan(per_slice[-1])  # a blank slice has no window to score
        assert np.all(np.isfinite(per_slice[:-1]))
        assert result.value == pytest.approx(per_slice[:-1].mean())


@pytest.mark.parametrize("name", MODELS)
def test_scores_do_not_depend_on_the_batch(model_dir: Path, name: str) -> None:
    stack = phantom((20, 40, 48)) if name == "hysnet" else phantom((7, 40, 48))
    (one,) = make_metric(model_dir, name, batch_size=1).evaluate(stack)
    (many,) = make_metric(model_dir, name, batch_size=5).evaluate(stack)
    np.testing.assert_allclose(one.per_slice, many.per_slice, rtol=1e-5, atol=1e-6)
    assert one.value == pytest.approx(many.value, rel=1e-5)


@pytest.mark.parametrize("name", ["msm", "rank_effnet"])
def test_small_slices_are_scored_whole_and_large_ones_tiled(model_dir: Path, name: str) -> None:
    """Tile 64: a 40 x 44 slice is padded to the size multiple; a 128 x 128 slice is four tiles."""
    metric = make_metric(model_dir, name)
    multiple = metric.entry.input.spatial_multiple
    small = phantom((3, 40, 44))
    normalised = normalise(small.voxels, "stack_foreground_p99")
    rows, cols = (-(-n // multiple) * multiple for n in (40, 44))
    padded = np.zeros((3, 1, rows, cols), np.float32)
    padded[:, 0, :40, :44] = normalised
    (result,) = metric.evaluate(small)
    np.testing.assert_allclose(
        result.per_slice, direct_scores(model_dir, metric.entry, padded), rtol=1e-5, atol=1e-6
    )

    large = phantom((2, 128, 128), seed=1)
    normalised = normalise(large.voxels, "stack_foreground_p99")
    quadrants = np.stack([normalised[:, r : r + 64, c : c + 64] for r in (0, 64) for c in (0, 64)], axis=1)
    expected = (
        direct_scores(model_dir, metric.entry, quadrants.reshape(-1, 1, 64, 64)).reshape(2, 4).mean(axis=1)
    )
    (result,) = metric.evaluate(large)
    np.testing.assert_allclose(result.per_slice, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_zero_padding_is_cut_off_before_a_stack_is_scored(model_dir: Path, name: str) -> None:
    """Zero air added around a stack is storage: the padded stack scores as the original, slice by slice."""
    stack = phantom((20, 40, 48)) if name == "hysnet" else phantom((3, 40, 48))
    padded = np.pad(stack.voxels, ((0, 0), (11, 30), (7, 0)))
    assert padded.min() == 0.0 < stack.voxels.min()  # the phantom's own air is noise, never exactly 0
    metric = make_metric(model_dir, name)
    (original,) = metric.evaluate(stack)
    (restored,) = metric.evaluate(dataclasses.replace(stack, voxels=padded))
    np.testing.assert_allclose(restored.per_slice, original.per_slice, rtol=1e-5, atol=1e-6)
    assert restored.value == pytest.approx(original.value, rel=1e-5)


@pytest.mark.xfail(
    strict=True,
    reason="the networks are not transpose-invariant and stacks are scored as stored; feeding every "
    "stack in one pose (docs/training.md, 2026-12-05) changes the verdict's inputs and ships only with "
    "a refit that passes, which the first did not",
)
@pytest.mark.parametrize("name", MODELS)
def test_a_transposed_stack_scores_as_the_original(model_dir: Path, name: str) -> None:
    """Rows and columns swapped is storage: a transposed series should score as the original."""
    stack = phantom((20, 40, 48)) if name == "hysnet" else phantom((3, 40, 48))
    metric = make_metric(model_dir, name)
    (original,) = metric.evaluate(stack)
    transposed = np.ascontiguousarray(stack.voxels.transpose(0, 2, 1))
    (restored,) = metric.evaluate(dataclasses.replace(stack, voxels=transposed))
    np.testing.assert_allclose(restored.per_slice, original.per_slice, rtol=1e-5, atol=1e-6)


def test_patches_step_by_half_a_patch_and_slices_average_the_patches_covering_them(model_dir: Path) -> None:
    """Patch 16, stride 8: slices 0-7 lie in the first layer of patches, 16-23 in the last, 8-15 in both."""
    metric = make_metric(model_dir, "hysnet")
    rng = np.random.default_rng(3)
    voxels = (500.0 + 100.0 * ndimage.gaussian_filter(rng.standard_normal((24, 32, 32)), 1.5)).astype(
        np.float32
    )
    stack = Stack(voxels, (1.0, 1.0, 1.0), None, tuple(str(i) for i in range(24)), "axial")
    normalised = normalise(voxels, "stack_foreground_p99")
    starts = [(d, r, c) for d in (0, 8) for r in (0, 8, 16) for c in (0, 8, 16)]
    patches = np.stack([normalised[d : d + 16, r : r + 16, c : c + 16] for d, r, c in starts])[:, None]
    scores = direct_scores(model_dir, metric.entry, patches).reshape(2, 9)
    (result,) = metric.evaluate(stack)
    assert result.value == pytest.approx(scores.mean(), rel=1e-5)
    per_slice = np.array(result.per_slice)
    np.testing.assert_allclose(per_slice[:8], scores[0].mean(), rtol=1e-5)
    np.testing.assert_allclose(per_slice[8:16], scores.mean(), rtol=1e-5)
    np.testing.assert_allclose(per_slice[16:], scores[1].mean(), rtol=1e-5)


def test_a_stack_thinner_than_a_patch_is_repeated_along_its_slices(model_dir: Path) -> None:
    """Five slices fill a 16-slice patch as 0-4, 0-4, 0-4, 0: absent slices are not air."""
    stack = phantom((5, 40, 40))
    normalised = normalise(stack.voxels, "stack_foreground_p99")
    repeated = normalised[[i % 5 for i in range(16)]]
    starts = [(r, c) for r in (0, 8, 16, 24) for c in (0, 8, 16, 24)]
    patches = np.stack([repeated[:, r : r + 16, c : c + 16] for r, c in starts])
    patches = patches[(patches > FOREGROUND_LEVEL).mean(axis=(1, 2, 3)) >= MIN_FOREGROUND_FRACTION]
    metric = make_metric(model_dir, "hysnet")
    (result,) = metric.evaluate(stack)
    expected = direct_scores(model_dir, metric.entry, patches[:, None]).mean()
    assert result.value == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(result.per_slice, result.value, rtol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_blank_stack_is_not_assessable(model_dir: Path, name: str) -> None:
    blank = Stack(np.zeros((4, 32, 32), np.float32), (1.0, 1.0, 1.0), None, ("1", "2", "3", "4"), "axial")
    with pytest.raises(NotAssessable, match=name):
        make_metric(model_dir, name).evaluate(blank)


def test_calibrated_models_report_quality_on_the_calibration(model_dir: Path) -> None:
    entry = entry_of(model_dir, "msm")  # lower is better: quality falls as the residual grows
    calibration = Calibration(raw=(0.0, 0.5, 2.0), quality=(100.0, 50.0, 0.0), calibrated=True, method="test")
    metric = OnnxMetric(dataclasses.replace(entry, calibration=calibration), model_dir, threads=1)
    (result,) = metric.evaluate(phantom((4, 40, 48)))
    assert result.quality == pytest.approx(
        float(np.interp(result.value, calibration.raw, calibration.quality))
    )


def test_cpu_is_the_fallback_provider(model_dir: Path) -> None:
    assert choose_providers([CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers([CPU]) == [CPU]
    assert choose_providers([CUDA, CPU], requested=[CPU]) == [CPU]
    # Asking for CUDA where ONNX Runtime has none gives the CPU session (and the float32 file).
    metric = OnnxMetric(entry_of(model_dir, "msm"), model_dir, providers=[CUDA, CPU], threads=1)
    assert metric.providers == ([CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU])


def test_a_model_file_that_contradicts_its_manifest_is_refused(model_dir: Path) -> None:
    entry = entry_of(model_dir, "msm")
    wrong_input = dataclasses.replace(entry, input=dataclasses.replace(entry.input, tensor_name="patch"))
    with pytest.raises(ManifestError, match="has inputs"):
        OnnxMetric(wrong_input, model_dir, threads=1)
    with pytest.raises(ManifestError, match="cannot load"):
        OnnxMetric(entry, model_dir / "elsewhere", threads=1)


def test_workers_load_learned_suites_only_when_a_manifest_ships(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, worker_concurrency=2)
    monkeypatch.setattr(learned, "default_manifest_path", lambda: tmp_path / "absent" / "manifest.json")
    suites = load_suites(settings)
    assert [type(s) for s in suites] == [ClassicMetrics]
    monkeypatch.setattr(learned, "default_manifest_path", lambda: model_dir / "manifest.json")
    suites = load_suites(settings)
    assert [s.name for s in suites] == ["classic", *MODELS]
