"""The DICOM SR of one series' quality result, as IHE AI Results asks for it.

A Comprehensive 3D SR whose content is a TID 1500 Measurement Report with one measurement group
(TID 1501) for the series: a numeric item per metric (and per calibrated quality), the series
verdict's quality as the Image Quality Rating, the pass/warn/fail flag as a Quality Finding, and each
artifact found as an Image artifact(s) evaluation with its 0-100 severity, whose source images are the
slices where it is worst (the instances with those InstanceNumbers, or those frames of a multi-frame
instance), so a viewer can jump to them. The evaluated instances are
its evidence, its patient and study attributes are theirs (so it files into their study), and a
re-score's report names the report it supersedes. ``docs/sr.md`` draws the content tree and lists
every code.

Pure: the caller chooses the UIDs (and stores them first, so a retry resends the same document) and
does the storing and sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from highdicom.sr import (
    Comprehensive3DSR,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    SourceImageForMeasurement,
    TrackingIdentifier,
)
from pydicom import Dataset

from qcgate.assessment.document import AssessmentDocument
from qcgate.core.errors import ReportNotBuildable
from qcgate.sr import codes
from qcgate.sr.device import SOFTWARE_NAME, derived_uid, model_algorithm, observer_contexts, qcgate_algorithm
from qcgate.sr.evidence import PriorReport, checked_evidence
from qcgate.sr.result import reportable
from qcgate.sr.review import HumanReview, review_group, reviewer_observer

SERIES_NUMBER = 9901  # high, so viewers list the report after the images
SERIES_DESCRIPTION = "qcgate quality report"
MANUFACTURER = "qcgate"
TRACKING_IDENTIFIER = "qcgate series quality"


def build_quality_report(
    evidence: Sequence[Dataset],
    result: AssessmentDocument | Mapping[str, Any],
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    instance_number: int = 1,
    predecessor: PriorReport | None = None,
    series_number: int = SERIES_NUMBER,
    manufacturer: str = MANUFACTURER,
    institution_name: str | None = None,
    institutional_department_name: str | None = None,
    content_datetime: datetime | None = None,
    review: HumanReview | None = None,
) -> Comprehensive3DSR:
    """The SR of ``result`` (an assessment document, or its JSON) over the instances whose headers
    are ``evidence``.

    ``predecessor`` is the previous SR of the same series when this is a re-score; ``content_datetime``
    is when the assessment was made (default: now). ``review``, a person's review of this assessment,
    adds the reviewer as an observer and their finding as a second group (:mod:`qcgate.sr.review`).
    Raises :class:`ReportNotBuildable` when the result is not "done", is malformed, or does not match
    its evidence.
    """
    reported = reportable(result)
    headers = checked_evidence(
        evidence,
        instances=reported.instances,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
    )
    if predecessor is not None:
        _check_predecessor(predecessor, study_instance_uid=headers[0].StudyInstanceUID, own=sop_instance_uid)
    try:
        observers = observer_contexts(reported, manufacturer)
        groups = [_series_group(reported, headers)]
        if review is not None:
            observers.insert(0, reviewer_observer(review))
            groups.append(review_group(review, str(headers[0].SeriesInstanceUID)))
        content = MeasurementReport(
            observation_context=_observation_context(observers),
            procedure_reported=codes.PROCEDURE_REPORTED,
            imaging_measurements=groups,
        )
        return Comprehensive3DSR(
            evidence=headers,
            content=content,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=manufacturer,
            is_complete=True,
            is_final=True,
            institution_name=institution_name,
            institutional_department_name=institutional_department_name,
            previous_versions=None if predecessor is None else [predecessor.as_dataset()],
            coding_schemes=[codes.coding_scheme()],
            series_description=SERIES_DESCRIPTION,
            manufacturer_model_name=SOFTWARE_NAME,
            software_versions=reported.provenance.software_version,
            content_date=None if content_datetime is None else content_datetime.date(),
            content_time=None if content_datetime is None else content_datetime.time(),
        )
    except ValueError as exc:
        raise ReportNotBuildable(f"highdicom refused the SR: {exc}") from exc


def _check_predecessor(predecessor: PriorReport, *, study_instance_uid: str, own: str) -> None:
    """A re-score's report supersedes an earlier report of the same series, so of the same study."""
    if predecessor.study_instance_uid != study_instance_uid:
        raise ReportNotBuildable(
            f"the predecessor belongs to study {predecessor.study_instance_uid}, not {study_instance_uid}"
        )
    if predecessor.sop_instance_uid == own:
        raise ReportNotBuildable("a report cannot be its own predecessor")


def _observation_context(observers: Sequence[ObserverContext]) -> ObservationContext:
    """TID 1001 with one Observer Context per device (highdicom's constructor takes only one device)."""
    context = ObservationContext()
    for observer in observers:
        context.extend(observer)
    return context


def _series_group(
    result: AssessmentDocument, headers: Sequence[Dataset]
) -> MeasurementsAndQualitativeEvaluations:
    """The series' measurement group; its Tracking UID is the series', so re-scores can be followed."""
    series_instance_uid = str(headers[0].SeriesInstanceUID)
    algorithms = {algorithm.name: algorithm for algorithm in result.provenance.algorithms or []}
    measurements = []
    for name, metric in result.metrics.items():
        concept = codes.metric_concept(name)
        algorithm = algorithms.get(name)
        algorithm_id = model_algorithm(algorithm) if algorithm is not None else None
        measurements.append(Measurement(concept.value, metric.value, concept.unit, algorithm_id=algorithm_id))
        if metric.quality is not None:
            measurements.append(
                Measurement(concept.quality, metric.quality, codes.RANGE_0_100, algorithm_id=algorithm_id)
            )
    if result.quality is not None:
        measurements.append(Measurement(codes.IMAGE_QUALITY_RATING, result.quality, codes.RANGE_0_100))
    for finding in result.findings:
        measurements.append(
            Measurement(
                codes.ARTIFACT_SEVERITY[finding.kind],
                finding.severity,
                codes.RANGE_0_100,
                referenced_images=_worst_slices(finding.slices, headers) or None,
            )
        )
    evaluations = [
        QualitativeEvaluation(codes.IMAGE_ARTIFACTS, codes.ARTIFACT_KINDS[finding.kind])
        for finding in result.findings
    ]
    if result.flag is not None:
        evaluations.insert(0, QualitativeEvaluation(codes.QUALITY_FINDING, codes.FLAGS[result.flag]))
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=derived_uid("tracking", series_instance_uid), identifier=TRACKING_IDENTIFIER
        ),
        finding_type=codes.QUALITY_ASSESSMENT,
        algorithm_id=qcgate_algorithm(result),
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
    )


def _worst_slices(slices: Sequence[int], headers: Sequence[Dataset]) -> list[SourceImageForMeasurement]:
    """The images a finding names: frames of a multi-frame instance, else instances by InstanceNumber.

    A number no evidence instance carries is left out (the document is checked against the same
    evidence, so that happens only for instances without an InstanceNumber).
    """
    if len(headers) == 1 and int(getattr(headers[0], "NumberOfFrames", 1) or 1) > 1:
        frames = [n for n in slices if 1 <= n <= int(headers[0].NumberOfFrames)]
        return [SourceImageForMeasurement.from_source_image(headers[0], frames)] if frames else []
    by_number: dict[int, Dataset] = {}
    for header in headers:
        number = getattr(header, "InstanceNumber", None)
        if number is not None:
            by_number.setdefault(int(number), header)
    return [SourceImageForMeasurement.from_source_image(by_number[n]) for n in slices if n in by_number]
