"""The release gate: a trained model ships only with enough skill on held-out synthetic validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qcgate.models.release import MIN_VALIDATION_SRCC, RELEASE, passes_gate


def write_report(runs: Path, name: str, validation: dict | None) -> None:
    (runs / f"{name}.json").write_text(json.dumps({"model": name, "validation": validation}))


@pytest.mark.parametrize(
    ("srcc", "ships"), [(MIN_VALIDATION_SRCC + 0.1, True), (MIN_VALIDATION_SRCC, True), (0.05, False)]
)
def test_gate_follows_the_overall_validation_srcc(tmp_path: Path, srcc: float, ships: bool) -> None:
    write_report(tmp_path, "msm", {"groups": {"overall": {"srcc_ssim_within": srcc}}})
    assert passes_gate(tmp_path, "msm") is ships


def test_a_run_without_validation_never_ships(tmp_path: Path) -> None:
    write_report(tmp_path, "hysnet", None)
    assert passes_gate(tmp_path, "hysnet") is False


def test_the_plan_trains_every_registered_model_from_its_own_config() -> None:
    pytest.importorskip("torch")
    from qcgate.models.registry import list_models

    assert sorted(run.name for run in RELEASE) == sorted(list_models())
    assert all(run.config.is_file() and run.steps > 0 for run in RELEASE)
