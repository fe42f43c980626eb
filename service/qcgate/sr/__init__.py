"""DICOM documents of a series' quality result: the SR (:mod:`.report`) and the KOS (:mod:`.kos`).

Pure functions of the stored assessment and the evaluated instances' headers: no database, network
or queue. Storage, routing and delivery call them; ``docs/sr.md`` describes what they write.
"""

from qcgate.sr.evidence import PriorReport
from qcgate.sr.kos import build_quality_issue_selection
from qcgate.sr.report import build_quality_report

__all__ = ["PriorReport", "build_quality_issue_selection", "build_quality_report"]
