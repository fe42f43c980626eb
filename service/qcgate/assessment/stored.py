"""The assessment document and series header of stored rows, for the readers of the database.

REST and the webhook body read a series and its assessment from the store; both take them through
here, so they read the same document the pipeline built. Old rows are read tolerantly
(:meth:`~qcgate.assessment.document.AssessmentDocument.from_stored`).
"""

from __future__ import annotations

from qcgate.assessment.document import AssessmentDocument, SeriesHeader
from qcgate.store.repository import assessment_json
from qcgate.store.tables import Assessment, Series


def stored_document(assessment: Assessment) -> AssessmentDocument:
    """The document of a stored assessment, whichever version stored it."""
    return AssessmentDocument.from_stored(assessment_json(assessment))


def stored_header(series: Series) -> SeriesHeader:
    """A stored series' header: its UIDs, where it came from, its status and its instance count."""
    return SeriesHeader(
        series_instance_uid=series.series_instance_uid,
        study_instance_uid=series.study.study_instance_uid,
        status=series.status,
        instances=series.instance_count,
        modality=series.modality,
        station_name=series.station_name,
        series_description=series.series_description,
        calling_ae=series.calling_ae,
    )
