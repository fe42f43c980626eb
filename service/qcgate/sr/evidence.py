"""What the SR and KOS cite: the evaluated instances, and the report a re-score supersedes.

Both documents file into the evaluated series' study, so the headers must come from one series of one
study, and there must be exactly as many distinct instances as the assessment scored: a report that
cited other instances than those measured would misstate what was measured.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import Comprehensive3DSRStorage

from qcgate.core.errors import ReportNotBuildable

_IDENTIFIERS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
# Type 2 attributes of the Patient and General Study modules that highdicom reads from the first header:
# a header without one still yields a report, with the attribute present and empty as Type 2 allows.
_TYPE2_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)


@dataclass(frozen=True)
class PriorReport:
    """The SR a re-score supersedes; the new SR cites it in its Predecessor Documents Sequence."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str = Comprehensive3DSRStorage

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> PriorReport:
        """The reference to an SR at hand (read back from the SR store, or just built)."""
        return cls(
            str(dataset.StudyInstanceUID),
            str(dataset.SeriesInstanceUID),
            str(dataset.SOPInstanceUID),
            str(dataset.SOPClassUID),
        )

    def as_dataset(self) -> Dataset:
        """The four UIDs as the dataset highdicom's ``previous_versions`` reads."""
        dataset = Dataset()
        dataset.StudyInstanceUID = self.study_instance_uid
        dataset.SeriesInstanceUID = self.series_instance_uid
        dataset.SOPInstanceUID = self.sop_instance_uid
        dataset.SOPClassUID = self.sop_class_uid
        return dataset


def checked_evidence(
    evidence: Sequence[Dataset], *, instances: int, series_instance_uid: str, sop_instance_uid: str
) -> list[Dataset]:
    """The evaluated headers, checked, the first one copied with any missing Type 2 study attribute empty.

    ``instances`` is the count the assessment scored; ``series_instance_uid`` and ``sop_instance_uid``
    are the new document's own, which must not be those of an evaluated instance.
    """
    if not evidence:
        raise ReportNotBuildable("no evaluated instance was given as evidence")
    for index, header in enumerate(evidence):
        missing = [keyword for keyword in _IDENTIFIERS if not header.get(keyword)]
        if missing:
            raise ReportNotBuildable(f"evidence[{index}] lacks {', '.join(missing)}")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        found = sorted({str(getattr(header, keyword)) for header in evidence})
        if len(found) > 1:
            raise ReportNotBuildable(f"the evidence spans {len(found)} values of {keyword}: {found}")
    evaluated = {str(header.SOPInstanceUID) for header in evidence}
    if len(evaluated) != instances:
        raise ReportNotBuildable(
            f"the evidence holds {len(evaluated)} distinct instances, the assessment scored {instances}"
        )
    if series_instance_uid == evidence[0].SeriesInstanceUID or sop_instance_uid in evaluated:
        raise ReportNotBuildable("the document's own UIDs must differ from those of the evaluated series")
    first = copy.deepcopy(evidence[0])
    for keyword in _TYPE2_STUDY:
        if keyword not in first:
            setattr(first, keyword, "")
    return [first, *evidence[1:]]
