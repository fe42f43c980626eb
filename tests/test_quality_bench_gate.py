"""The gate-level numbers on hand-made score rows whose answers are known: classes, AUC, the default
flag's sensitivity and specificity, invariance under re-storings, the findings' confusion table."""

from __future__ import annotations

import math
from typing import Any

import pytest

from qcgate.bench.quality.agreement import auc
from qcgate.bench.quality.analysis import OVERALL, group_rows, reader_pairs
from qcgate.bench.quality.gate import (
    CLEAN_MILD,
    NO_FINDING,
    OTHER,
    RESTORED,
    SEVERE,
    copy_classes,
    findings_confusion,
    flag_numbers,
    gate_analysis,
    invariance,
    separation,
)
from qcgate.bench.quality.gate_report import gate_markdown
from qcgate.bench.quality.scoring import ScoreRow


def _row(
    image: str,
    copy: str,
    *,
    quality: float | None = None,
    flag: str | None = "pass",
    status: str = "done",
    composite: float = 1.0,
    findings: list[dict[str, Any]] | None = None,
    msm: float = math.nan,
) -> ScoreRow:
    """A scored copy; kind and severity follow from the copy's name as the benchmark names them."""
    if copy == "clean":
        kind, severity = "clean", 0.0
    elif copy.startswith("restore-"):
        kind, severity = "restore", 0.0
    elif copy.startswith("random-"):
        kind, severity = "random", None
    else:
        kind, text = copy.split("@")
        severity = float(text)
    return ScoreRow(
        image=image,
        anatomy="test",
        copy=copy,
        kind=kind,
        severity=severity,
        corruptions=[],
        reference={"ssim": composite},
        composite=composite,
        status=status,
        metrics={"msm": msm, "snr": msm},
        higher_is_better={"msm": False, "snr": True},
        flag=flag,
        quality=quality,
        findings=findings or [],
        metric_quality={"msm": 100.0 - msm, "snr": math.nan},
    )


def test_auc_counts_pairs_won_and_ties_as_half() -> None:
    assert auc([3.0, 4.0], [1.0, 2.0]).value == 1.0
    assert auc([1.0, 2.0], [3.0, 4.0]).value == 0.0
    assert auc([2.0], [2.0]).value == 0.5
    # 16 pairs, lost only 50 < 55: 15/16
    assert auc([80.0, 70.0, 60.0, 50.0], [55.0, 40.0, 30.0, 20.0]).value == pytest.approx(15 / 16)
    result = auc([1.0, math.nan], [0.0])
    assert (result.value, result.n) == (1.0, 2)  # the NaN is left out
    assert math.isnan(auc([], [1.0]).value)


def test_classes_follow_severity_and_the_images_own_floor_for_random_mixes() -> None:
    rows = [
        _row("a", "clean", composite=1.0),
        _row("a", "noise@0.2", composite=0.8),
        _row("a", "noise@0.4", composite=0.7),
        _row("a", "noise@0.6", composite=0.5),
        _row("a", "random-00", composite=0.75),  # below a's floor (noise@0.2, 0.8): severe
        _row("a", "random-01", composite=0.85),
        _row("a", "restore-cropped"),
        _row("b", "clean", composite=1.0),
        _row("b", "random-00", composite=0.79),  # below b's floor (only its clean copy, 1.0)
    ]
    assert copy_classes(rows) == [
        CLEAN_MILD,
        CLEAN_MILD,
        OTHER,
        SEVERE,
        SEVERE,
        OTHER,
        RESTORED,
        CLEAN_MILD,
        SEVERE,
    ]


def _gate_rows() -> list[ScoreRow]:
    """Two images. Clean/mild qualities 80, 70 | 60, 50; severe 55, 40 | 30, 20: AUC 15/16."""
    blur = [{"kind": "blur", "severity": 70.0, "slices": [1], "stack": "axial"}]
    noise_then_blur = [
        {"kind": "noise", "severity": 30.0, "slices": [2], "stack": "axial"},
        {"kind": "blur", "severity": 60.0, "slices": [1, 2], "stack": "axial"},
    ]
    return [
        _row("a", "clean", quality=80.0, msm=20.0),
        _row("a", "noise@0.2", quality=70.0, flag="warn", composite=0.9, msm=30.0),
        _row("a", "noise@0.4", quality=65.0, composite=0.8, msm=35.0),  # moderate: in nothing
        _row("a", "noise@1", quality=55.0, flag="pass", composite=0.4, findings=noise_then_blur, msm=45.0),
        _row("a", "blur@1", quality=40.0, flag="fail", composite=0.3, findings=blur, msm=60.0),
        _row("a", "restore-transposed", quality=78.0, msm=21.0),
        _row("a", "restore-zero-filled-air", quality=None, flag=None, status="not_assessable"),
        _row("b", "clean", quality=60.0, flag="warn", msm=40.0),
        _row("b", "gibbs@0.2", quality=50.0, composite=0.95, msm=42.0),
        _row("b", "gibbs@1", quality=30.0, flag="warn", composite=0.5, msm=70.0),
        _row("b", "random-00", quality=20.0, flag=None, status="not_assessable", composite=0.2, msm=80.0),
        _row("b", "restore-transposed", quality=69.0, flag="pass", msm=41.0),
        _row("b", "restore-zero-filled-air", quality=60.5, flag="warn", msm=40.0),
    ]


def test_separation_gives_the_known_auc_and_counts() -> None:
    rows = _gate_rows()
    classes = copy_classes(rows)
    numbers = separation([r.quality if r.quality is not None else math.nan for r in rows], classes)
    assert numbers["auc"] == pytest.approx(15 / 16)
    assert (numbers["severe"], numbers["clean_mild"], numbers["restored"]) == (4, 4, 4)
    assert numbers["without_value"] == 0
    # with the re-stored copies among the good: 78, 69, 60.5 win all four; the missing one is left out
    assert numbers["auc_with_restored"] == pytest.approx((15 + 3 * 4) / (7 * 4))


def test_the_default_flag_counts_warn_and_fail_as_flagged_and_only_pass_as_passed() -> None:
    rows = _gate_rows()
    numbers = flag_numbers(rows, copy_classes(rows))
    overall = numbers["overall"]
    # severe: noise@1 pass, blur@1 fail, gibbs@1 warn, random-00 not assessable (no flag)
    assert (overall["flagged"], overall["severe"], overall["sensitivity"]) == (2, 4, 0.5)
    assert overall["severe_not_assessable"] == 1
    # clean and re-stored: a clean pass, a transposed pass, a not-assessable, b clean warn, b pass, b warn
    assert (overall["passed"], overall["benign"]) == (3, 6)
    assert overall["specificity"] == 0.5
    assert (overall["benign_warned"], overall["benign_failed"], overall["benign_not_assessable"]) == (2, 0, 1)
    assert numbers["benign_not_assessable"] == [{"image": "a", "copy": "restore-zero-filled-air"}]
    per_kind = numbers["per_kind"]
    assert per_kind["blur"]["sensitivity"] == 1.0
    assert per_kind["noise"]["sensitivity"] == 0.0  # noise@0.2 (mild) is not counted, noise@1 passed
    assert per_kind["random"]["severe_not_assessable"] == 1
    assert per_kind["clean"]["specificity"] == 0.5
    assert per_kind["restore-transposed"]["specificity"] == 1.0
    assert per_kind["restore-zero-filled-air"]["passed"] == 0
    assert math.isnan(per_kind["restore-transposed"]["sensitivity"])  # no severe copy there
    assert numbers["per_image"]["a"]["sensitivity"] == 0.5
    assert numbers["per_image"]["b"]["specificity"] == pytest.approx(1 / 3)


def test_invariance_measures_how_far_each_restoring_moves_quality_and_flag() -> None:
    numbers = invariance(_gate_rows())
    transposed = numbers["restore-transposed"]
    assert transposed["max_abs_difference"] == pytest.approx(9.0)
    assert transposed["mean_abs_difference"] == pytest.approx(5.5)
    assert (transposed["within_tolerance"], transposed["compared"]) == (1, 2)
    assert transposed["same_flag"] == 1  # b: clean warned, transposed passed
    assert transposed["per_image"] == {"a": pytest.approx(-2.0), "b": pytest.approx(9.0)}
    zero = numbers["restore-zero-filled-air"]
    assert (zero["compared"], zero["without_quality"], zero["max_abs_difference"]) == (1, 1, 0.5)


def test_the_confusion_table_takes_the_most_severe_finding_or_none() -> None:
    rows = _gate_rows()
    numbers = findings_confusion(rows, copy_classes(rows))
    assert numbers["copies"] == 3  # noise@1, blur@1, gibbs@1: random mixes are not single-kind
    assert numbers["confusion"] == {"noise": {"blur": 1}, "blur": {"blur": 1}, "gibbs": {NO_FINDING: 1}}
    assert numbers["per_kind"]["noise"] == {"copies": 1, "expected": "noise", "top_right": 0, "any_right": 1}
    assert numbers["top_right"] == pytest.approx(1 / 3)
    assert numbers["any_right"] == pytest.approx(2 / 3)


def test_the_simulators_kinds_map_to_the_findings_kinds() -> None:
    ghost = [{"kind": "ghosting", "severity": 50.0, "slices": [1], "stack": "axial"}]
    rows = [
        _row("a", "clean"),
        _row("a", "nyquist_ghost@1", composite=0.3, findings=ghost),
        _row("a", "motion_rotation@0.8", composite=0.3),
    ]
    numbers = findings_confusion(rows, copy_classes(rows))
    assert numbers["per_kind"]["nyquist_ghost"]["top_right"] == 1
    assert numbers["per_kind"]["motion_rotation"]["expected"] == "motion"


def test_metrics_are_compared_by_calibrated_quality_and_by_raw_value() -> None:
    gate = gate_analysis(_gate_rows())
    msm = gate["auc"]["metrics"]["msm"]
    assert msm["value"]["auc"] == pytest.approx(1.0)  # lower is better, oriented before comparing
    assert msm["calibrated"]["auc"] == pytest.approx(1.0)
    assert math.isnan(gate["auc"]["metrics"]["snr"]["calibrated"]["auc"])  # no calibration
    assert gate["auc"]["metrics"]["snr"]["value"]["auc"] == pytest.approx(0.0)  # msm read as higher-better
    assert gate["classes"] == {CLEAN_MILD: 4, OTHER: 1, SEVERE: 4, RESTORED: 4}


def test_rows_from_a_runtime_without_a_verdict_give_empty_numbers_not_errors() -> None:
    rows = [
        ScoreRow("a", "test", c, k, s, [], {"ssim": q}, q, "done", {"snr": q}, {"snr": True})
        for c, k, s, q in (
            ("clean", "clean", 0.0, 1.0),
            ("noise@1", "noise", 1.0, 0.3),
            ("restore-cropped", "restore", 0.0, 1.0),
        )
    ]
    gate = gate_analysis(rows)
    assert math.isnan(gate["auc"]["quality"]["auc"])
    assert gate["flag"]["overall"]["flagged"] == 0
    assert gate["findings"]["confusion"] == {"noise": {NO_FINDING: 1}}
    assert gate["invariance"]["restore-cropped"]["without_quality"] == 1
    text = "\n".join(gate_markdown(gate, {"snr": True}))
    for heading in ("## Gate level", "AUC", "The default flag", "Invariance", "Findings by corruption kind"):
        assert heading in text


def test_the_report_section_has_every_table() -> None:
    text = "\n".join(gate_markdown(gate_analysis(_gate_rows()), {"msm": False, "snr": True}))
    assert "| **quality** (series verdict) | 0.94 |" in text
    assert "| msm (↓) | 1.00 |" in text
    assert "| blur | 1.00 | 1/1 | 0 |" in text  # sensitivity per kind
    assert "| transposed | 1.00 | 2/2 | 0 | 0 | 0 |" in text  # specificity per re-storing
    assert "| transposed | 2 | 9.00 | 5.50 | 1/2 | 1/2 | 0 |" in text
    assert "| gibbs (gibbs) | 0 | 1 | 0/1 | 0/1 |" in text  # columns: blur, none
    assert "restore-zero-filled-air" in text  # named among the not-assessable copies


def test_restored_copies_stay_out_of_the_correlations_and_reader_pairs() -> None:
    rows = _gate_rows()
    groups = group_rows(rows)
    restored = {i for i, row in enumerate(rows) if row.kind == "restore"}
    assert not restored & {i for members in groups.values() for i in members}
    assert len(groups[OVERALL]) == len(rows) - len(restored)
    assert not any({p.first, p.second} & restored for p in reader_pairs(rows, seed=0))
