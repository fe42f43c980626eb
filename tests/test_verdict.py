"""The series verdict: how quality and findings become a flag and words, how slices are named, which
series are judged at all, and that the shipped model gives the same verdict to the same anatomy
however it was stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset

from qcgate.assessment.document import Finding
from qcgate.assessment.eligibility import assessable_instances
from qcgate.assessment.pipeline import assess_series
from qcgate.assessment.verdict import (
    SeriesVerdict,
    judge_stacks,
    shipped_verdict_model,
    slice_ranges,
    verdict_flag,
)
from qcgate.bench.verdict_scoring import assess_volume
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import SeriesFilter, VerdictLimits
from qcgate.imaging.volume import Stack
from qcgate.metrics.classic import ClassicMetrics
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series

# Fixed limits, not the defaults (those follow the shipped model: see the last test).
LIMITS = VerdictLimits(quality_warn=65, quality_fail=40, severity_warn=40, severity_fail=70)


def finding(kind: str, severity: float, slices: list[int]) -> Finding:
    return Finding(kind=kind, severity=severity, slices=slices, stack="axial")


@pytest.mark.parametrize(
    ("numbers", "words"),
    [([7], "slice 7"), ([40, 41, 42, 50], "slices 40-42, 50"), ([3, 1, 2], "slices 1-3"), ([], "")],
)
def test_slices_read_as_ranges(numbers: list[int], words: str) -> None:
    assert slice_ranges(numbers) == words


def test_a_clean_verdict_passes_without_reasons() -> None:
    assert verdict_flag(SeriesVerdict(88.0, ()), LIMITS) == (Flag.PASS, [])


def test_a_severe_finding_fails_with_a_reason_a_radiographer_reads() -> None:
    verdict = SeriesVerdict(71.0, (finding("motion", 81.0, [40, 41, 42, 72]),))
    assert verdict_flag(verdict, LIMITS) == (Flag.FAIL, ["motion artifact, severe, slices 40-42, 72"])


def test_a_moderate_finding_warns_and_a_mild_one_is_reported_but_does_not_flag() -> None:
    moderate = SeriesVerdict(80.0, (finding("ghosting", 60.0, [3]),))
    assert verdict_flag(moderate, LIMITS) == (Flag.WARN, ["ghosting, moderate, slice 3"])
    mild = SeriesVerdict(80.0, (finding("noise", 25.0, [3]),))
    assert verdict_flag(mild, LIMITS) == (Flag.PASS, [])


def test_low_quality_flags_on_its_own() -> None:
    assert verdict_flag(SeriesVerdict(55.0, ()), LIMITS)[0] == Flag.WARN
    flag, reasons = verdict_flag(SeriesVerdict(12.0, ()), LIMITS)
    assert flag == Flag.FAIL
    assert reasons == ["image quality 12/100 is below the fail limit 40"]


def test_low_quality_names_the_likeliest_artifact_when_no_finding_flags_on_its_own() -> None:
    verdict = SeriesVerdict(24.0, (finding("blur", 38.0, [4, 5, 6]),))
    assert verdict_flag(verdict, LIMITS) == (
        Flag.FAIL,
        ["image quality 24/100 is below the fail limit 40; most likely blur, slices 4-6"],
    )


@pytest.mark.parametrize(
    ("quality", "severity"),
    [(88.0, 0.0), (88.0, 39.9), (74.0, 0.0), (73.9, 0.0), (88.0, 40.0), (12.0, 81.0)],
)
def test_warns_counts_a_flag_exactly_where_the_verdict_flags(quality: float, severity: float) -> None:
    limits = VerdictLimits(quality_warn=74, quality_fail=40, severity_warn=40, severity_fail=70)
    findings = (finding("blur", severity, [1]),) if severity else ()
    flag, _ = verdict_flag(SeriesVerdict(quality, findings), limits)
    assert limits.warns(quality, severity) == (flag != Flag.PASS)


def test_limits_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="at least as strict"):
        VerdictLimits(quality_warn=30, quality_fail=50)


def test_findings_name_slices_by_instance_number_and_keep_the_worst_stack() -> None:
    model = shipped_verdict_model()
    volume = noisy_phantom((12, 96, 96), noise_fraction=0.25)
    numbered = Stack(
        volume, (1.0, 1.0, 1.0), None, tuple(str(i) for i in range(12)), "axial", tuple(range(101, 113))
    )
    verdict = judge_stacks([numbered], model)
    assert verdict.quality is not None
    for found in verdict.findings:
        assert found.stack == "axial"
        assert set(found.slices) <= set(range(101, 113))


def _dataset(image_type: list[str], description: str = "t1", b_value: float | None = None) -> Dataset:
    ds = Dataset()
    ds.ImageType = image_type
    ds.SeriesDescription = description
    if b_value is not None:
        ds.DiffusionBValue = b_value
    return ds


@pytest.mark.parametrize(
    ("dataset", "judged"),
    [
        (_dataset(["ORIGINAL", "PRIMARY", "M", "ND"]), True),
        (_dataset(["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]), False),
        (_dataset(["ORIGINAL", "PRIMARY", "P", "ND"]), False),
        (_dataset(["DERIVED", "SECONDARY", "MIP"]), False),
        (_dataset(["ORIGINAL", "PRIMARY", "LOCALIZER"]), False),
        (_dataset(["ORIGINAL", "PRIMARY", "M"], "AAHead_Scout"), True),  # "Scout" inside a word: judged
        (_dataset(["ORIGINAL", "PRIMARY", "M"], "3-plane loc"), False),
        (_dataset(["ORIGINAL", "PRIMARY", "M"], "ep2d_diff", b_value=1000), False),
        (_dataset(["ORIGINAL", "PRIMARY", "M"], "ep2d_diff", b_value=0), True),
    ],
)
def test_header_rules_decide_what_is_judged(dataset: Dataset, judged: bool) -> None:
    kept, reasons = assessable_instances([dataset], SeriesFilter())
    assert (kept == [dataset]) is judged
    assert bool(reasons) is not judged


def test_a_site_can_include_a_description_the_rules_exclude() -> None:
    scout = _dataset(["ORIGINAL", "PRIMARY", "M"], "survey 3D")
    assert assessable_instances([scout], SeriesFilter())[0] == []
    assert assessable_instances([scout], SeriesFilter(include_descriptions=["survey 3D"]))[0] == [scout]


def test_a_series_of_derived_maps_is_not_assessable_with_the_reason(tmp_path: Path) -> None:
    datasets = mr_series_datasets(noisy_phantom((8, 64, 64)), series_description="ADC map")
    for ds in datasets:
        ds.ImageType = ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]
    files = write_series(datasets, tmp_path / "adc")
    assessment = assess_series(files, [ClassicMetrics()], {})
    assert assessment.outcome == SeriesStatus.NOT_ASSESSABLE
    assert assessment.flag is None
    assert assessment.result.quality is None
    assert "ADC" in assessment.reasons[0]


def test_the_pipeline_document_carries_the_verdict(tmp_path: Path) -> None:
    files = write_series(
        mr_series_datasets(noisy_phantom((12, 96, 96)), series_description="t1"), tmp_path / "t1"
    )
    assessment = assess_series(files, [ClassicMetrics()], {})
    document = assessment.document()
    assert list(document)[:5] == ["status", "instances", "flag", "quality", "findings"]
    assert 0.0 <= document["quality"] <= 100.0
    assert document["provenance"]["verdict"]["limits"] == VerdictLimits().model_dump()
    assert len(document["provenance"]["verdict"]["model"]["sha256"]) == 64


@pytest.mark.parametrize(
    "restore",
    [
        pytest.param(lambda v: v * 250.0, id="intensity-x250"),
        pytest.param(lambda v: v[:, ::-1, :], id="flipped-rows"),
        pytest.param(lambda v: v[:, :, ::-1], id="flipped-columns"),
        pytest.param(lambda v: np.ascontiguousarray(v.transpose(0, 2, 1)), id="transposed"),
        pytest.param(lambda v: np.pad(v, ((0, 0), (24, 24), (24, 24))), id="padded-with-zero-air"),
    ],
)
def test_benign_restoring_keeps_the_quality_within_5_points(restore: object) -> None:
    """The same anatomy stored differently gets the same verdict (issue 11: within 5 points)."""
    model = shipped_verdict_model()
    volume = noisy_phantom((10, 96, 96), noise_fraction=0.03)
    reference = assess_volume(model, volume).quality  # with the learned scores the worker gives it
    restored = assess_volume(model, restore(volume)).quality  # type: ignore[operator]
    assert reference is not None
    assert restored is not None
    assert abs(restored - reference) <= 5.0


def test_the_default_limits_are_the_shipped_models_suggested_ones() -> None:
    """A new verdict model has a quality scale of its own: the settings' default limits must be the ones
    its training derived on synthetic validation copies (models/qcgate/models/verdict/train.py)."""
    suggested = shipped_verdict_model().document["suggested_limits"]
    assert VerdictLimits().model_dump() == {name: suggested[name] for name in VerdictLimits.model_fields}
    assert suggested["validation"]["clean_mild_passed"] >= 0.97
    assert suggested["validation"]["clean_failed"] == 0.0
