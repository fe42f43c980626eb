"""Learned metrics as verdict inputs: the training side scores a copy exactly as the service does,
and a model that reads them takes each stack's per-slice scores at the slices its features came
from, or what clean images give where a metric was not computed."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from qcgate.assessment.verdict import (
    judge_stacks,
    learned_per_slice,
    missing_learned_inputs,
    shipped_verdict_model,
)
from qcgate.contract.artifacts import FEATURE_NAMES, artifact_features
from qcgate.contract.verdict_model import FINDING_KINDS, VerdictModel
from qcgate.imaging.volume import Stack
from qcgate.metrics.base import MetricResult
from qcgate.metrics.learned import load_learned_suites
from qcgate.models.verdict import generate
from qcgate.models.verdict.data import samples_for_base
from qcgate.models.verdict.generate import SPLITS
from qcgate.models.verdict.learned_inputs import LEARNED_INPUTS, learned_scores
from qcgate.models.verdict.train import fit, quality_of_rows
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.worker.celery_app import warn_if_the_verdict_lacks_inputs


def _toy_model() -> VerdictModel:
    """Quality and blur driven by ``msm`` alone: 0 reads clean, 1 reads bad."""
    names = [*FEATURE_NAMES, "msm"]
    silent = [0.0] * len(FEATURE_NAMES)
    return VerdictModel(
        {
            "feature_names": names,
            "learned_inputs": ["msm"],
            "learned_fill": {"msm": 0.0},
            "knots": {name: [0.0, 1.0] for name in names},
            "quality": {
                "intercept": 3.0,
                "weights": [*silent, 6.0],
                "calibration": {"x": [0.0, 100.0], "y": [0.0, 100.0]},
            },
            "findings": {
                kind: {
                    "intercept": -3.0,
                    "weights": [*silent, 6.0 if kind == "blur" else 0.0],
                    "threshold": 40.0,
                }
                for kind in FINDING_KINDS
            },
        }
    )


def test_the_training_side_scores_a_slice_as_the_service_does() -> None:
    suites = {suite.name: suite for suite in load_learned_suites(threads=1)}
    image = noisy_phantom(shape=(8, 200, 176), noise_fraction=0.03)[4]  # larger than a tile: several windows
    stack = Stack(
        voxels=image[None],
        spacing_mm=(1.0, 1.0, 1.0),
        phase_encode_axis=0,
        sop_instance_uids=("1",),
        label="x",
    )
    trained = learned_scores(image)
    assert set(trained) == set(LEARNED_INPUTS)
    for name in LEARNED_INPUTS:
        result = suites[name].evaluate(stack)[0]
        served = learned_per_slice({name: result}, [name])[name]
        assert trained[name] == pytest.approx(served[0], rel=1e-4, abs=1e-6)
        assert (served[0] == -result.value) == result.higher_is_better  # oriented higher-is-worse


def test_a_model_reads_learned_scores_at_its_slices_and_fills_what_is_missing() -> None:
    model = _toy_model()
    volume = noisy_phantom(shape=(8, 96, 96), noise_fraction=0.03)[2:5]
    features = artifact_features(volume)
    assert features is not None
    bad = model.apply(features, {"msm": [1.0, 1.0, 1.0]})
    clean = model.apply(features, {"msm": [0.0, 0.0, 0.0]})
    missing = model.apply(features, None)
    unscored = model.apply(features, {"msm": [float("nan")] * 3})
    assert bad.quality is not None
    assert clean.quality is not None
    assert bad.quality < clean.quality - 50
    assert missing.quality == clean.quality == unscored.quality  # learned_fill is what clean gives
    assert [f.kind for f in bad.findings] == ["blur"]
    assert not clean.findings
    # The median over the assessed slices: one bad slice of three does not make the stack bad.
    one_bad = model.apply(features, {"msm": [0.0, 1.0, 0.0]})
    assert one_bad.quality == clean.quality
    assert one_bad.severities == clean.severities


def test_judge_stacks_hands_each_stack_its_own_learned_scores() -> None:
    model = _toy_model()
    volume = noisy_phantom(shape=(8, 96, 96), noise_fraction=0.03)[3:5]
    stacks = [
        Stack(
            voxels=volume,
            spacing_mm=(1.0, 1.0, 1.0),
            phase_encode_axis=0,
            sop_instance_uids=("1", "2"),
            label=label,
            slice_numbers=(1, 2),
        )
        for label in ("axial", "coronal")
    ]

    def scored(msm: float) -> dict[str, MetricResult]:
        return {"msm": MetricResult("msm", msm, False, per_slice=(msm, msm))}

    verdict = judge_stacks(stacks, model, [scored(0.0), scored(1.0)])
    assert [(f.kind, f.stack) for f in verdict.findings] == [("blur", "coronal")]
    assert verdict.quality == judge_stacks(stacks[1:], model, [scored(1.0)]).quality


def test_the_shipped_quality_head_reads_learned_scores_and_its_findings_do_not() -> None:
    """0.7.0: the learned metrics move quality (a fit chose them on validation copies); findings name
    damage the artifact features measured, so no finding head weighs a learned score."""
    model = shipped_verdict_model()
    assert model.learned_inputs == LEARNED_INPUTS
    document = model.document
    width = {name: len(document["knots"][name]) - 1 for name in model.feature_names}
    learned_columns = []
    start = 0
    for name in model.feature_names:
        if name in model.learned_inputs:
            learned_columns += list(range(start, start + width[name]))
        start += width[name]
    for head in document["findings"].values():
        assert all(head["weights"][j] == 0.0 for j in learned_columns)
    quality_weights = np.asarray(document["quality"]["weights"])
    assert np.abs(quality_weights[learned_columns]).sum() > 0


def test_training_rows_carry_the_learned_scores_the_fit_reads() -> None:
    model = shipped_verdict_model()
    rows = [dataclasses.asdict(sample) for sample in samples_for_base(SPLITS["validation"].start, 6)]
    assert all(set(row["learned"]) == set(LEARNED_INPUTS) for row in rows)
    filled = [{**row, "learned": dict(model.document["learned_fill"])} for row in rows]
    assert not np.allclose(quality_of_rows(model, rows), quality_of_rows(model, filled))


@pytest.mark.slow  # makes 24 bases' rows and fits four times: about a minute on 2 cores
def test_a_tiny_fit_with_learned_inputs_is_deterministic_and_keeps_them_out_of_findings(
    tmp_path: Path,
) -> None:
    splits = {"train": range(0, 16), "validation": range(100_000, 100_008)}
    folder = generate.generate(tmp_path, jobs=1, splits=splits, log=False)
    first, _ = fit(folder)
    second, _ = fit(folder)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    model = VerdictModel(first)
    assert model.learned_inputs == LEARNED_INPUTS
    assert model.feature_names == (*FEATURE_NAMES, *LEARNED_INPUTS)
    learned_columns = len(first["knots"]["msm"]) - 1 + len(first["knots"]["rank_effnet"]) - 1
    for head in first["findings"].values():
        assert head["weights"][-learned_columns:] == [0.0] * learned_columns
    # A kind head that may read them names kinds differently but cannot move quality or the limits
    kind_reading, _ = fit(folder, learned_kind_head=True)
    assert kind_reading["quality"] == first["quality"]
    # (how many validation copies the flag catches may move: which kind a finding names sets which
    # of the kinds' report thresholds applies)
    limits = {key: value for key, value in first["suggested_limits"].items() if key != "validation"}
    assert {key: kind_reading["suggested_limits"][key] for key in limits} == limits
    without, _ = fit(folder, learned=())
    assert without["feature_names"] == list(FEATURE_NAMES)
    assert without["learned_inputs"] == []


def test_a_worker_without_the_learned_metrics_is_told_what_the_verdict_lacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = shipped_verdict_model()
    assert missing_learned_inputs(model, ["classic", *LEARNED_INPUTS]) == []
    assert missing_learned_inputs(model, ["classic", "msm"]) == ["rank_effnet"]
    with caplog.at_level(logging.WARNING, logger="qcgate.worker.celery_app"):
        warn_if_the_verdict_lacks_inputs(["classic"])
    assert "msm, rank_effnet" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qcgate.worker.celery_app"):
        warn_if_the_verdict_lacks_inputs(["classic", *LEARNED_INPUTS])
    assert caplog.text == ""
