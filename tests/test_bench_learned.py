"""The learned-metrics benchmark in its tiny form: tiny networks, a 20x64x64 series, one round.

Only the shape of the result is under test, and that its ratios and rates are positive finite
numbers; timings are never asserted (the machines are shared and noisy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from qcgate.bench.learned import main  # noqa: E402
from qcgate.bench.learned_models import SHIPPED, prepare_models, service_window, shipped_models  # noqa: E402
from qcgate.bench.learned_timing import SWEEP_BATCHES, SWEEP_PROVIDERS, batch_sweep, race  # noqa: E402
from qcgate.contract.manifest import MANIFEST_NAME, InputSpec  # noqa: E402
from qcgate.export.onnx_export import export_checkpoint  # noqa: E402
from qcgate.metrics.learned import CPU, DEFAULT_BATCH, session_providers  # noqa: E402
from qcgate.models.checkpoint import save_checkpoint  # noqa: E402
from qcgate.models.registry import list_models  # noqa: E402
from tests.tiny_models import tiny_model  # noqa: E402

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("learned")
    no_models = tmp_path_factory.mktemp("no-shipped-models")
    arguments = ["--tiny", "--repeats", "1", "--out", str(folder), "--models-dir", str(no_models)]
    assert main(arguments) == 0
    return folder


@pytest.fixture(scope="module")
def result(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "learned.json").read_text())
    return document


def positive_finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_every_registered_model_runs_in_both_runtimes_on_the_service_batch(result: dict[str, Any]) -> None:
    assert sorted(result["models"]) == list_models()
    for model in result["models"].values():
        assert model["weights"] == "random weights, tiny config"
        assert model["input_shape"][0] == DEFAULT_BATCH[model["kind"]]
        assert len(model["onnxruntime_samples_s"]) == len(model["torch_samples_s"]) == 1
        ratios = [model["speedup"], model["onnxruntime_windows_per_s"], model["torch_windows_per_s"]]
        assert all(positive_finite(value) for value in ratios)
        assert model["max_abs_difference"] < 1e-3  # both runtimes ran the same network on the same batch
        assert isinstance(model["meets_goal"], bool)
    assert result["settings"]["threads"] >= 1


def test_the_series_is_scored_by_every_suite_in_a_worker_without_torch(result: dict[str, Any]) -> None:
    worker, series = result["worker"], result["series"]
    assert worker["suites"] == ["classic", *list_models()]
    assert worker["torch_imported"] is False
    assert len(worker["rounds"]) == 1
    assert set(series["suites_s"]) == set(worker["suites"])
    assert positive_finite(series["total_s"]["median"])
    assert all(positive_finite(s["median"]) for s in series["suites_s"].values())


def test_peak_memory_is_the_workers_own(result: dict[str, Any]) -> None:
    """ru_maxrss grows step by step and matches the kernel's VmHWM: nothing inherited from this process."""
    peak = result["memory"]["peak_rss_mib"]
    steps = [peak[key] for key in ("imported", "loaded", "cold_series", "scored")]
    assert all(positive_finite(value) for value in steps)
    assert steps == sorted(steps)
    if result["worker"]["vm_hwm_mib"] is not None:
        assert steps[-1] <= 1.05 * result["worker"]["vm_hwm_mib"]


def test_the_batch_sweep_finds_the_saturating_batch_of_every_model(result: dict[str, Any]) -> None:
    sweep = result["sweep"]["providers"][CPU]
    assert sweep["provider"] == CPU
    assert sorted(sweep["models"]) == list_models()
    for model in sweep["models"].values():
        assert model["precision"] == "fp32"
        assert list(model["windows_per_s"]) == [str(size) for size in SWEEP_BATCHES]
        assert all(positive_finite(rate) for rate in model["windows_per_s"].values())
        for size in SWEEP_BATCHES:  # a rate is the batch over its median time
            assert model["windows_per_s"][str(size)] == pytest.approx(
                size / model["batch_ms"][str(size)] * 1e3
            )
        assert model["saturating_batch"] in SWEEP_BATCHES


def test_the_batch_sweep_is_not_measured_where_its_provider_is_missing(tmp_path: Path) -> None:
    sweep = batch_sweep(
        tmp_path / "manifest.json", (64, 64), 1, lambda _: None, provider="NoSuchExecutionProvider"
    )
    assert sweep["skipped"].startswith("not measured: ONNX Runtime offers no NoSuchExecutionProvider")


def test_sweep_provider_alone_measures_every_offered_provider(tmp_path: Path) -> None:
    assert (
        main(["--sweep-provider", "--tiny", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)]) == 0
    )
    result = json.loads((tmp_path / "learned_sweep.json").read_text())
    offered = session_providers("auto")
    assert list(result["sweep"]["providers"]) == list(SWEEP_PROVIDERS)
    for provider, sweep in result["sweep"]["providers"].items():
        assert ("skipped" not in sweep) == (provider in offered), provider
    report = (tmp_path / "learned_sweep.md").read_text()
    assert "CPUExecutionProvider batch sweep" in report
    if "CUDAExecutionProvider" not in offered:
        assert "CUDAExecutionProvider batch sweep**: not measured" in report


def test_report_and_plot_are_written(out: Path, result: dict[str, Any]) -> None:
    report = (out / "learned.md").read_text()
    for heading in (
        "ONNX Runtime (CPU) against PyTorch eager",
        "Scoring a 20x64x64 series",
        "Peak worker memory",
    ):
        assert heading in report
    assert "Tiny mode" in report
    assert (out / "learned.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("kind", "tile", "slice_shape", "window"),
    [
        ("slice2d", (256, 256), (256, 256), (256, 256)),  # scored whole
        ("slice2d", (256, 256), (100, 300), (112, 256)),  # padded rows, tiled columns
        ("patch3d", (32, 32, 32), (256, 256), (32, 32, 32)),  # fixed patches
    ],
)
def test_the_race_uses_the_window_the_service_cuts(
    kind: str, tile: tuple[int, ...], slice_shape: tuple[int, int], window: tuple[int, ...]
) -> None:
    spec = InputSpec(kind, "image", "stack_foreground_p99", tile, tile, spatial_multiple=16)
    assert service_window(spec, slice_shape) == window


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ONNX folder, checkpoint folder) as ``make models`` leaves them, with tiny networks."""
    root = tmp_path_factory.mktemp("shipped")
    for name in list_models():
        checkpoint = root / "runs" / f"{name}.pt"
        save_checkpoint(checkpoint, tiny_model(name), seed=0, data_version="test", steps=1, git_commit="none")
        export_checkpoint(checkpoint, root / "onnx", version="0.1.0")
    return root / "onnx", root / "runs"


def test_shipped_models_race_against_the_checkpoints_they_came_from(
    shipped: tuple[Path, Path], tmp_path: Path
) -> None:
    prepared = prepare_models(*shipped, tmp_path, threads=1)
    assert prepared.manifest_path == shipped[0] / MANIFEST_NAME
    assert [pair.weights for pair in prepared.pairs] == [SHIPPED] * len(list_models())
    assert not (tmp_path / MANIFEST_NAME).exists()  # nothing needed a random-weight stand-in
    results = race(prepared.pairs, (64, 64), 1, lambda _: None)
    assert all(model["max_abs_difference"] < 1e-3 for model in results.values())


def test_a_checkpoint_of_another_training_run_is_not_taken_for_the_shipped_one(
    shipped: tuple[Path, Path], tmp_path: Path
) -> None:
    models_dir, runs = shipped
    for name in list_models():
        (tmp_path / f"{name}.pt").write_bytes((runs / f"{name}.pt").read_bytes())
    save_checkpoint(
        tmp_path / "msm.pt", tiny_model("msm"), seed=0, data_version="test", steps=2, git_commit="none"
    )
    assert sorted(shipped_models(models_dir, tmp_path)) == [n for n in list_models() if n != "msm"]
