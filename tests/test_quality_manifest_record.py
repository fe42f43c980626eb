"""The quality benchmark writes each shipped model's headline figures into its manifest entry."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from qcgate.bench.quality.manifest_record import benchmark_figures, record_in_manifest  # noqa: E402
from qcgate.contract.manifest import load_manifest  # noqa: E402
from tests.tiny_models import export_tiny_models  # noqa: E402


def numbers(srcc_within: float) -> dict[str, float]:
    return {"srcc_ssim_within": srcc_within, "srcc_ssim_across": 0.5, "ranking_consensus": 0.8, "copies": 9}


def test_headline_figures_name_the_worst_corruption_type_and_skip_undefined_ones() -> None:
    groups = {"overall": numbers(0.7), "random": numbers(0.1), "blur": numbers(0.9), "noise": numbers(0.4)}
    groups["gibbs"] = numbers(float("nan"))
    figures = benchmark_figures(groups)
    assert figures["quality_srcc_ssim_within"] == 0.7
    assert figures["quality_srcc_ssim_within_worst_type"] == 0.4
    assert figures["quality_copies"] == 9.0


@pytest.mark.slow  # scores every shipped model: about 18 s
def test_recording_updates_scored_models_and_keeps_files_verifiable(tmp_path: Path) -> None:
    export_tiny_models(tmp_path)
    path = tmp_path / "manifest.json"
    before = {entry.name: entry for entry in load_manifest(path).models}
    record_in_manifest({"msm": {"overall": numbers(0.6)}}, path)
    after = {entry.name: entry for entry in load_manifest(path).models}  # sha256s still verified
    assert after["msm"].benchmarks["quality_srcc_ssim_within"] == 0.6
    assert after["msm"].device_uid == before["msm"].device_uid
    assert after["hysnet"] == before["hysnet"]
