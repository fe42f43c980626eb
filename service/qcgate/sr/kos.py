"""The Key Object Selection that marks a flagged series' instances as a Quality Issue.

Titled (DCM, 113010, "Quality Issue"), never (DCM, 113001, "Rejected for Quality Reasons"): archives
act on 113001 by hiding or deleting the instances, and a qcgate flag is advice to a person, not a
rejection. Only a flagged series (warn or fail) has an issue to select. The selection names every
evaluated instance (the result does not say which slices are to blame) and, when given, the quality
report, so a viewer can go from the marked images to the numbers; its description is the flag and
the reasons, the words a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
from pydicom import Dataset

from qcgate.assessment.document import AssessmentDocument
from qcgate.core.errors import ReportNotBuildable
from qcgate.core.outcomes import Flag
from qcgate.sr import codes
from qcgate.sr.device import qcgate_observer
from qcgate.sr.evidence import checked_evidence
from qcgate.sr.report import MANUFACTURER
from qcgate.sr.result import reportable

SERIES_NUMBER = 9902  # after the images and the report (a KO series cannot share the SR's series)
SERIES_DESCRIPTION = "qcgate quality issue"


def build_quality_issue_selection(
    evidence: Sequence[Dataset],
    result: AssessmentDocument | Mapping[str, Any],
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    instance_number: int = 1,
    report: Dataset | None = None,
    series_number: int = SERIES_NUMBER,
    manufacturer: str = MANUFACTURER,
    institution_name: str | None = None,
    institutional_department_name: str | None = None,
    content_datetime: datetime | None = None,
) -> KeyObjectSelectionDocument:
    """The Quality Issue KOS of a flagged ``result`` over its ``evidence``, citing ``report`` if given.

    Raises :class:`ReportNotBuildable` for a result that is not "done", not flagged warn or fail,
    malformed, or inconsistent with its evidence.
    """
    reported = reportable(result)
    if reported.flag not in (Flag.WARN, Flag.FAIL):
        raise ReportNotBuildable(
            f'only a series flagged warn or fail has a quality issue, not "{reported.flag}"'
        )
    headers = checked_evidence(
        evidence,
        instances=reported.instances,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
    )
    selected = [*headers, report] if report is not None else headers
    try:
        content = KeyObjectSelection(
            document_title=codes.QUALITY_ISSUE,
            referenced_objects=selected,
            observer_device_context=qcgate_observer(reported.provenance.software_version, manufacturer),
            description=_description(reported),
        )
        return KeyObjectSelectionDocument(
            evidence=selected,
            content=content,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=manufacturer,
            institution_name=institution_name,
            institutional_department_name=institutional_department_name,
            series_description=SERIES_DESCRIPTION,
            content_date=None if content_datetime is None else content_datetime.date(),
            content_time=None if content_datetime is None else content_datetime.time(),
        )
    except ValueError as exc:
        raise ReportNotBuildable(f"highdicom refused the KOS: {exc}") from exc


def _description(result: AssessmentDocument) -> str:
    return "; ".join([f"qcgate flag: {result.flag}", *result.reasons])
