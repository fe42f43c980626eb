"""The quality benchmark end to end, in its smallest configuration: two small real images, one
corruption type at one severity, one random combination and three benign re-storings, scored
through ``qcgate score``'s path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qcgate.bench.quality.cli import BenchmarkResult, main, run

pytestmark = pytest.mark.slow  # the benchmark run all tests share takes about 6 s

CLASSIC = {"snr", "snrd", "cnr", "cjv", "efc", "fber", "gsr"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RESTORINGS = ("transposed", "zero-filled-air", "single-slice")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkResult:
    out = tmp_path_factory.mktemp("quality")
    return run(
        out,
        images=["mr-small-head", "emri-head"],
        severities=[0.0, 1.0],
        kinds=["noise"],
        random_combinations=1,
        restorings=RESTORINGS,
        max_slices=4,
        jobs=1,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )


def test_every_copy_is_scored_by_every_service_metric(result: BenchmarkResult) -> None:
    document = json.loads(result.json_path.read_text())
    rows = document["rows"]
    copies = ("clean", "noise@1", "random-00", "restore-transposed", "restore-zero-filled-air")
    assert [(r["image"], r["copy"]) for r in rows] == [
        *(("mr-small-head", copy) for copy in copies),  # one slice: no single-slice re-storing
        *(("emri-head", copy) for copy in (*copies, "restore-single-slice")),
    ]
    corrupted = [r for r in rows if r["kind"] != "restore"]
    assert all(r["status"] == "done" for r in corrupted)
    assert all(CLASSIC <= set(r["metrics"]) for r in corrupted)
    assert {r["reference"]["ssim"] for r in rows if r["copy"] == "clean"} == {1.0}
    noisy = [r for r in rows if r["copy"] == "noise@1"]
    assert all(r["corruptions"][0]["kind"] == "noise" and r["reference"]["ssim"] < 1.0 for r in noisy)


def test_the_json_holds_numbers_per_metric_and_group_with_directions(result: BenchmarkResult) -> None:
    document = json.loads(result.json_path.read_text())
    assert CLASSIC <= set(document["results"])
    assert set(document["results"]["snr"]) == {"noise", "random", "overall"}
    assert document["higher_is_better"]["cjv"] is False
    overall = document["results"]["gsr"]["overall"]
    assert overall["copies"] == 6
    assert overall["ranking_consensus_pairs"] <= 2 * 3
    assert document["settings"]["severities"] == [0.0, 1.0]
    assert all(image["provenance"]["kind"] == "real-evaluation" for image in document["images"])


def test_noise_lowers_dietrich_snr_within_each_image(result: BenchmarkResult) -> None:
    """A metric with a known answer: added noise must lower SNRd (mirrors the thresholds bench)."""
    rows = json.loads(result.json_path.read_text())["rows"]
    for image in ("mr-small-head", "emri-head"):
        clean, noisy = (
            next(r for r in rows if r["image"] == image and r["copy"] == c) for c in ("clean", "noise@1")
        )
        assert noisy["metrics"]["snrd"] < clean["metrics"]["snrd"]


def test_restored_copies_carry_the_clean_reference_and_the_verdict_fields(result: BenchmarkResult) -> None:
    rows = json.loads(result.json_path.read_text())["rows"]
    restored = [r for r in rows if r["kind"] == "restore"]
    assert len(restored) == 5
    assert all(r["severity"] == 0.0 and r["reference"]["ssim"] == 1.0 for r in restored)
    assert all(r["corruptions"] == [] for r in restored)
    transposed = [r for r in restored if r["copy"] == "restore-transposed"]
    assert all(r["status"] == "done" for r in transposed)
    for row in rows:  # read tolerantly: present whether or not the runtime reports a verdict
        assert {"flag", "quality", "findings", "metric_quality"} <= set(row)


def test_the_json_holds_the_gate_level_numbers(result: BenchmarkResult) -> None:
    document = json.loads(result.json_path.read_text())
    gate = document["gate"]
    assert set(gate) == {"definitions", "classes", "auc", "flag", "invariance", "findings"}
    assert gate["classes"]["restored"] == 5
    assert gate["flag"]["overall"]["benign"] == 2 + 5  # two clean copies and the re-stored ones
    assert set(gate["invariance"]) == {f"restore-{name}" for name in RESTORINGS}
    assert gate["invariance"]["restore-single-slice"]["images"] == 1
    assert CLASSIC <= set(gate["auc"]["metrics"])
    assert document["settings"]["restorings"] == list(RESTORINGS)


def test_the_markdown_report_has_every_table(result: BenchmarkResult) -> None:
    text = result.markdown_path.read_text()
    for heading in (
        "## Overall",
        "## Gate level",
        "Across-image AUC",
        "The default flag",
        "Invariance of quality under benign re-storings",
        "Findings by corruption kind",
        "per corruption type",
        "by anatomy",
        "## Images",
    ):
        assert heading in text
    assert "| snrd (↑) |" in text
    assert "| cjv (↓) |" in text


def test_pictures_are_pngs_for_every_metric_and_the_example_grid(result: BenchmarkResult) -> None:
    names = {p.name for p in result.pictures}
    assert {f"scatter_{m}.png" for m in CLASSIC} <= names
    assert "calibration.png" in names
    assert any(name.startswith("examples_") for name in names)
    for picture in result.pictures:
        assert picture.read_bytes()[:8] == PNG_MAGIC
        assert picture.stat().st_size > 5_000


def test_the_command_line_refuses_unknown_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--images", "no-such-scan"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_no_number_is_infinite(result: BenchmarkResult) -> None:
    """JSON has no NaN or infinity: undefined values are written as null."""

    def walk(value: object) -> None:
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(result.json_path.read_text(), parse_constant=lambda name: float(name)))
