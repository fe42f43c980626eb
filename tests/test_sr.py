"""The quality SR and the Quality Issue KOS, built from a real assessment of a written MR series and
checked by the tools that archives trust: dciodvfy (dicom3tools) for the IOD, DCMTK's dsrdump for the
SR tree, and pydicom reading back with validation errors raised."""

from __future__ import annotations

import copy
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import highdicom
import pydicom
import pytest
from pydicom.config import strict_reading
from pydicom.uid import generate_uid
from pydicom.valuerep import DS

from qcgate.assessment.document import Finding
from qcgate.assessment.pipeline import SeriesAssessment, assess_series, failed_assessment
from qcgate.assessment.verdict import SeriesVerdict
from qcgate.core.errors import ReportNotBuildable
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Settings
from qcgate.harness.peers import require_peer
from qcgate.metrics.base import Algorithm, MetricResult
from qcgate.metrics.classic import ClassicMetrics
from qcgate.sr import PriorReport, build_quality_issue_selection, build_quality_report
from qcgate.sr.codes import ARTIFACT_KINDS, ARTIFACT_SEVERITY, METRICS, PRIVATE_SCHEME, metric_concept
from qcgate.sr.device import derived_uid
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series

STUDY_ATTRIBUTES = (
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)
STANDARD_SCHEMES = {"DCM", "SCT", "LN", "UCUM", "RFC5646"}


@dataclass(frozen=True)
class Scenario:
    """A flag and the learned metrics beside the classic ones: name -> calibrated quality or None."""

    flag: Flag
    learned: dict[str, float | None]
    verdict: SeriesVerdict = SeriesVerdict(None, ())


SCENARIOS = {
    "classic-pass": Scenario(Flag.PASS, {}),
    "calibrated-warn": Scenario(Flag.WARN, {"msm": 81.5, "hysnet": 55.25, "rank_effnet": 73.0}),
    "uncalibrated-fail": Scenario(Flag.FAIL, {"msm": None, "hysnet": None}),
    "partly-calibrated-fail": Scenario(Flag.FAIL, {"msm": None, "rank_effnet": 12.5}),
    "verdict-with-findings-fail": Scenario(
        Flag.FAIL,
        {"msm": 40.0},
        SeriesVerdict(
            22.5,
            (
                Finding(kind="motion", severity=81.0, slices=[4, 5, 6], stack="axial"),
                Finding(kind="wrap_around", severity=55.5, slices=[2], stack="axial"),
            ),
        ),
    ),
}


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], SeriesAssessment]:
    """A T1 series with full patient and study attributes, and its real classic assessment."""
    datasets = mr_series_datasets(
        noisy_phantom((12, 64, 64)), series_description="t1 mprage", patient_id="QC-42"
    )
    for ds in datasets:
        ds.PatientName, ds.AccessionNumber, ds.ReferringPhysicianName = "Doe^Jane", "ACC-42", "Ref^Doc"
    files = write_series(datasets, tmp_path_factory.mktemp("series"))
    assessment = assess_series(files, [ClassicMetrics()], Settings().thresholds)
    assert assessment.outcome is SeriesStatus.DONE, assessment.reasons
    return files, assessment


@pytest.fixture
def headers(series: tuple[list[Path], SeriesAssessment]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in series[0]]


def result_document(assessment: SeriesAssessment, scenario: Scenario) -> dict[str, Any]:
    """The classic assessment plus learned metrics shaped as the pipeline shapes them, with the flag."""
    learned = {
        name: MetricResult(name, 0.1 * index + 1 / 3, higher_is_better=False, quality=quality)
        for index, (name, quality) in enumerate(scenario.learned.items())
    }
    algorithms = [
        asdict(Algorithm(name, "1.0.0", generate_uid(prefix=None), hashlib.sha256(name.encode()).hexdigest()))
        for name in learned
    ]
    provenance = {**assessment.provenance, "algorithms": algorithms}
    reasons = [] if scenario.flag is Flag.PASS else [f"synthetic reason for {scenario.flag}"]
    flagged = replace(
        assessment,
        flag=scenario.flag,
        reasons=reasons,
        metrics={**assessment.metrics, **learned},
        provenance=provenance,
        verdict=scenario.verdict,
    )
    return flagged.document()


def build(headers: list[pydicom.Dataset], document: dict[str, Any], **options: Any) -> pydicom.Dataset:
    return build_quality_report(
        headers, document, series_instance_uid=generate_uid(), sop_instance_uid=generate_uid(), **options
    )


def write(dataset: pydicom.Dataset, path: Path) -> Path:
    dataset.save_as(path, enforce_file_format=True)
    return path


def read_strictly(path: Path) -> pydicom.Dataset:
    """Read with validation errors raised, touching every element so that each one is validated."""
    with strict_reading():
        dataset = pydicom.dcmread(path)
        elements = list(dataset.iterall())  # converting each raw element validates it
    assert elements
    return dataset


def tool(name: str) -> str:
    executable = shutil.which(name)
    require_peer(name, executable is not None, "`bash scripts/peers.sh` installs dicom3tools and dcmtk")
    assert executable is not None
    return executable


def dciodvfy_errors(path: Path, iod: str) -> list[str]:
    run = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    output = run.stdout + run.stderr
    assert output.startswith(iod), f"dciodvfy did not recognise a {iod}:\n{output}"
    return [line for line in output.splitlines() if line.startswith("Error")]


def content_items(dataset: pydicom.Dataset) -> Iterator[pydicom.Dataset]:
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def concept(item: pydicom.Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return code.CodingSchemeDesignator, code.get("CodeValue") or code.LongCodeValue


def numbers(sr: pydicom.Dataset) -> dict[tuple[str, str], float]:
    """Every NUM item's exact value by concept; a concept twice would be ambiguous, so it fails."""
    found: dict[tuple[str, str], float] = {}
    for item in content_items(sr):
        if item.ValueType == "NUM":
            assert concept(item) not in found, f"{concept(item)} appears twice"
            found[concept(item)] = item.MeasuredValueSequence[0].FloatingPointValue
    return found


def expected_numbers(document: dict[str, Any]) -> dict[tuple[str, str], float]:
    expected = {(PRIVATE_SCHEME, name): metric["value"] for name, metric in document["metrics"].items()}
    qualities = {name: m["quality"] for name, m in document["metrics"].items() if m["quality"] is not None}
    expected |= {(PRIVATE_SCHEME, f"{name}-q"): quality for name, quality in qualities.items()}
    if document.get("quality") is not None:
        expected[("DCM", "111029")] = document["quality"]  # the series verdict, not a metric's
    expected |= {
        (PRIVATE_SCHEME, ARTIFACT_SEVERITY[f["kind"]].value): f["severity"]
        for f in document.get("findings", [])
    }
    return expected


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_report_passes_dciodvfy_and_dsrdump_shows_every_value(
    series: tuple[list[Path], SeriesAssessment],
    headers: list[pydicom.Dataset],
    scenario: Scenario,
    tmp_path: Path,
) -> None:
    document = result_document(series[1], scenario)
    path = write(build(headers, document), tmp_path / "sr.dcm")
    assert dciodvfy_errors(path, "Comprehensive3DSR") == []
    dump = subprocess.run([tool("dsrdump"), str(path)], capture_output=True, text=True, check=False)
    assert dump.returncode == 0, dump.stderr
    for value in expected_numbers(document).values():
        assert f'="{DS(value, auto_format=True)}"' in dump.stdout
    assert f"({scenario.flag.value},{PRIVATE_SCHEME}," in dump.stdout


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_every_score_reads_back_strictly_as_in_the_result(
    series: tuple[list[Path], SeriesAssessment],
    headers: list[pydicom.Dataset],
    scenario: Scenario,
    tmp_path: Path,
) -> None:
    document = result_document(series[1], scenario)
    sr = read_strictly(write(build(headers, document), tmp_path / "sr.dcm"))
    assert numbers(sr) == expected_numbers(document)
    findings = [item for item in content_items(sr) if concept(item) == ("DCM", "111052")]
    assert [item.ConceptCodeSequence[0].CodeValue for item in findings] == [scenario.flag.value]
    artifacts = [item for item in content_items(sr) if concept(item) == ("DCM", "111207")]
    kinds = {code.value: kind for kind, code in ARTIFACT_KINDS.items()}
    assert [kinds[item.ConceptCodeSequence[0].CodeValue] for item in artifacts] == [
        finding.kind for finding in scenario.verdict.findings
    ]
    numbers_of = {str(h.SOPInstanceUID): int(h.InstanceNumber) for h in headers}
    for finding in scenario.verdict.findings:
        (severity,) = [
            item
            for item in content_items(sr)
            if concept(item) == (PRIVATE_SCHEME, ARTIFACT_SEVERITY[finding.kind].value)
        ]
        sources = [
            item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for item in severity.ContentSequence
            if item.ValueType == "IMAGE"
        ]
        assert [numbers_of[uid] for uid in sources] == finding.slices  # the worst slices, worst first
    rating = [item for item in content_items(sr) if concept(item) == ("DCM", "111029")]
    assert all(
        item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "{0:100}"
        for item in rating
    )
    used = {element.value for element in sr.iterall() if element.keyword == "CodingSchemeDesignator"}
    declared = {item.CodingSchemeDesignator for item in sr.CodingSchemeIdentificationSequence}
    assert PRIVATE_SCHEME in declared
    assert used - STANDARD_SCHEMES <= declared


def test_each_learned_value_names_its_model_and_every_model_is_a_device_observer(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], tmp_path: Path
) -> None:
    """Read through highdicom, as a consumer would: qcgate and each model are devices, with their UIDs."""
    document = result_document(series[1], SCENARIOS["calibrated-warn"])
    path = write(build(headers, document), tmp_path / "sr.dcm")
    report = highdicom.sr.srread(path).content
    algorithms = document["provenance"]["algorithms"]
    devices = [context.observer_identifying_attributes for context in report.get_observer_contexts()]
    assert [(device.name, device.uid) for device in devices] == [
        ("qcgate", derived_uid("device", document["provenance"]["software_version"])),
        *((algorithm["name"], algorithm["device_uid"]) for algorithm in algorithms),
    ]
    [group] = report.get_image_measurement_groups()
    for algorithm in algorithms:
        [measurement] = group.get_measurements(name=METRICS[algorithm["name"]].value)
        named = {concept(item): item.TextValue for item in measurement[0].ContentSequence}
        assert (named[("DCM", "111001")], named[("DCM", "111003")]) == (
            algorithm["name"],
            algorithm["version"],
        )
        assert named[("DCM", "111002")] == f"sha256 {algorithm['sha256']}"
    group_algorithm = {
        concept(item): item.TextValue for item in group[0].ContentSequence if "TextValue" in item
    }
    assert group_algorithm[("DCM", "111001")] == "qcgate"


def test_evidence_lists_every_instance_and_the_report_files_into_their_study(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], tmp_path: Path
) -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    document = result_document(series[1], SCENARIOS["classic-pass"])
    sr = read_strictly(write(build(headers, document, content_datetime=created), tmp_path / "sr.dcm"))
    [study] = sr.CurrentRequestedProcedureEvidenceSequence
    [evaluated] = study.ReferencedSeriesSequence
    assert evaluated.SeriesInstanceUID == headers[0].SeriesInstanceUID
    cited = {item.ReferencedSOPInstanceUID for item in evaluated.ReferencedSOPSequence}
    assert cited == {header.SOPInstanceUID for header in headers}
    assert len(cited) == document["instances"]
    for keyword in STUDY_ATTRIBUTES:
        assert sr[keyword].value == headers[0][keyword].value, keyword
    assert (sr.ContentDate, sr.ContentTime) == ("20240506", "070809")
    assert "PredecessorDocumentsSequence" not in sr


def test_a_header_without_type2_study_attributes_still_reports(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], tmp_path: Path
) -> None:
    del headers[0].AccessionNumber
    del headers[0].ReferringPhysicianName
    sr = read_strictly(
        write(build(headers, result_document(series[1], SCENARIOS["classic-pass"])), tmp_path / "a")
    )
    assert (sr.AccessionNumber, sr.ReferringPhysicianName) == ("", "")
    assert dciodvfy_errors(tmp_path / "a", "Comprehensive3DSR") == []


def test_a_rescore_references_its_predecessor_and_keeps_the_tracking_uid(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], tmp_path: Path
) -> None:
    first = build(headers, result_document(series[1], SCENARIOS["classic-pass"]))
    document = result_document(series[1], SCENARIOS["calibrated-warn"])
    path = write(
        build(headers, document, predecessor=PriorReport.from_dataset(first)), tmp_path / "rescore.dcm"
    )
    assert dciodvfy_errors(path, "Comprehensive3DSR") == []
    rescore = read_strictly(path)
    [study] = rescore.PredecessorDocumentsSequence
    [prior_series] = study.ReferencedSeriesSequence
    [prior] = prior_series.ReferencedSOPSequence
    assert (study.StudyInstanceUID, prior_series.SeriesInstanceUID) == (
        first.StudyInstanceUID,
        first.SeriesInstanceUID,
    )
    assert (prior.ReferencedSOPClassUID, prior.ReferencedSOPInstanceUID) == (
        first.SOPClassUID,
        first.SOPInstanceUID,
    )

    def tracking_uid(sr: pydicom.Dataset) -> str:
        return next(str(item.UID) for item in content_items(sr) if concept(item) == ("DCM", "112040"))

    assert tracking_uid(rescore) == tracking_uid(first)


@pytest.mark.parametrize("flag", [Flag.WARN, Flag.FAIL])
def test_quality_issue_selection_is_113010_cites_the_series_and_report_and_passes_dciodvfy(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], flag: Flag, tmp_path: Path
) -> None:
    document = result_document(series[1], replace(SCENARIOS["calibrated-warn"], flag=flag))
    report = build(headers, document)
    kos = build_quality_issue_selection(
        headers, document, series_instance_uid=generate_uid(), sop_instance_uid=generate_uid(), report=report
    )
    path = write(kos, tmp_path / "kos.dcm")
    assert dciodvfy_errors(path, "KeyObjectSelectionDocument") == []
    assert b"113001" not in path.read_bytes()
    kos = read_strictly(path)
    assert concept(kos) == ("DCM", "113010")
    cited = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID: item.ValueType
        for item in content_items(kos)
        if "ReferencedSOPSequence" in item
    }
    assert cited == {header.SOPInstanceUID: "IMAGE" for header in headers} | {
        report.SOPInstanceUID: "COMPOSITE"
    }
    [description] = [item.TextValue for item in content_items(kos) if concept(item) == ("DCM", "113012")]
    assert all(reason in description for reason in document["reasons"])
    assert kos.StudyInstanceUID == headers[0].StudyInstanceUID


def test_a_passing_series_has_no_quality_issue(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset]
) -> None:
    document = result_document(series[1], SCENARIOS["classic-pass"])
    with pytest.raises(ReportNotBuildable, match="warn or fail"):
        build_quality_issue_selection(
            headers, document, series_instance_uid=generate_uid(), sop_instance_uid=generate_uid()
        )


def _failed(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document |= failed_assessment("no foreground", len(headers)).document()


def _not_assessable(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document["status"] = SeriesStatus.NOT_ASSESSABLE.value


def _missing_instance(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    headers.pop()


def _two_series(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    headers[-1] = copy.deepcopy(headers[-1])
    headers[-1].SeriesInstanceUID = generate_uid()


def _unknown_metric(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document["metrics"]["sharpness"] = {"value": 1.0, "higher_is_better": True, "quality": None}


def _not_finite(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document["metrics"]["snr"]["value"] = float("nan")


def _quality_out_of_range(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document["metrics"]["msm"]["quality"] = 120.0


def _unknown_flag(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document["flag"] = "maybe"


def _invalid_device_uid(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    document["provenance"]["algorithms"][0]["device_uid"] = "msm v1"


def _malformed(document: dict[str, Any], headers: list[pydicom.Dataset]) -> None:
    del document["metrics"]


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_failed, '"done"'),
        (_not_assessable, '"done"'),
        (_missing_instance, "11 distinct instances, the assessment scored 12"),
        (_two_series, "2 values of SeriesInstanceUID"),
        (_unknown_metric, '"sharpness" has no code'),
        (_not_finite, "metrics.snr.value must be a finite number"),
        (_quality_out_of_range, "outside 0-100"),
        (_unknown_flag, '"maybe" is not one of'),
        (_invalid_device_uid, "msm: invalid Device UID 'msm v1'"),
        (_malformed, "malformed: KeyError"),
    ],
)
def test_a_result_that_cannot_be_reported_is_refused_with_the_reason(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], spoil: Any, message: str
) -> None:
    document = result_document(series[1], SCENARIOS["calibrated-warn"])
    spoil(document, headers)
    with pytest.raises(ReportNotBuildable, match=message):
        build(headers, document)


def test_a_predecessor_from_another_study_is_refused(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset]
) -> None:
    document = result_document(series[1], SCENARIOS["classic-pass"])
    elsewhere = PriorReport(generate_uid(), generate_uid(), generate_uid())
    with pytest.raises(ReportNotBuildable, match="predecessor belongs to study"):
        build(headers, document, predecessor=elsewhere)


def test_every_metric_qcgate_produces_has_a_code(series: tuple[list[Path], SeriesAssessment]) -> None:
    from qcgate.models.registry import (
        list_models,  # torch: the learned metrics are named by the model registry
    )

    assert set(series[1].metrics) | set(list_models()) <= set(METRICS)


def test_a_site_model_is_reported_beside_the_shipped_ones_under_a_code_of_its_own(
    series: tuple[list[Path], SeriesAssessment], headers: list[pydicom.Dataset], tmp_path: Path
) -> None:
    """A site's fine-tuned model (site_models_dir, named site_*) has no entry in METRICS: it is coded by
    its name, so a reader tells it from the shipped rank_effnet, and the SR stays valid."""
    shipped = SCENARIOS["calibrated-warn"]
    long_name = "site_rank_effnet_2026"  # longer than a Code Value's 16 characters: a Long Code Value
    scenario = replace(shipped, learned={**shipped.learned, "site_rank": 71.0, long_name: 64.0})
    document = result_document(series[1], scenario)
    path = write(build(headers, document), tmp_path / "sr.dcm")
    assert dciodvfy_errors(path, "Comprehensive3DSR") == []
    read = numbers(read_strictly(path))
    assert read[("99QCGATE", "site_rank-q")] == pytest.approx(71.0)
    assert read[("99QCGATE", f"{long_name}-q")] == pytest.approx(64.0)
    assert "rank_effnet" in shipped.learned
    assert ("99QCGATE", "rank_effnet") in read, "the shipped model stays beside the site's"
    with pytest.raises(ReportNotBuildable, match="site_"):
        metric_concept("site_")
