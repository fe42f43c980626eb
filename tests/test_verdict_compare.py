"""Comparing verdict models on the same validation rows: a model against itself differs by nothing,
and a model whose quality says nothing is far under the shipped one, outside chance."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from qcgate.contract.verdict_model import VerdictModel, default_verdict_path, load_verdict_model
from qcgate.models.verdict.compare import compare
from qcgate.models.verdict.data import samples_for_base
from qcgate.models.verdict.generate import SPLITS
from qcgate.models.verdict.train import quality_of_rows, selection_score


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    first = SPLITS["validation"].start
    return [dataclasses.asdict(s) for seed in range(first, first + 8) for s in samples_for_base(seed, 6)]


def test_the_shipped_model_against_itself_differs_by_nothing(rows: list[dict]) -> None:
    shipped = load_verdict_model(default_verdict_path())
    result = compare(rows, {"shipped": shipped, "again": shipped}, resamples=20)
    assert result["bases"] == 8
    again = result["models"]["again"]
    assert again["difference"] == {"value": 0.0, "bootstrap_sd": 0.0, "interval_90": [0.0, 0.0]}
    score = selection_score(quality_of_rows(shipped, rows), rows)[0]
    assert result["models"]["shipped"]["selection_score"] == pytest.approx(score, abs=1e-4)


def test_a_model_whose_quality_is_constant_is_under_the_shipped_one_beyond_chance(rows: list[dict]) -> None:
    shipped = load_verdict_model(default_verdict_path())
    document = copy.deepcopy(shipped.document)
    calibration = document["quality"]["calibration"]
    calibration["y"] = [50.0] * len(calibration["y"])
    result = compare(rows, {"shipped": shipped, "constant": VerdictModel(document)}, resamples=50)
    constant = result["models"]["constant"]
    assert constant["auc"] == 0.5
    assert constant["clean_change_mean"] == 0.0
    assert constant["difference"]["value"] < 0
    assert constant["difference"]["interval_90"][1] < 0
