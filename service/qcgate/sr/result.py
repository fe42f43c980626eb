"""The assessment document an SR or KOS reports, checked at the boundary, or refused.

The reports are built from :class:`~qcgate.assessment.document.AssessmentDocument`, whose constructor
has already checked every value (finite numbers, qualities within 0-100, valid Device UIDs). A
document given as JSON (a mapping) is validated here by the same model; what it refuses raises
:class:`~qcgate.core.errors.ReportNotBuildable` naming the field. Only a finished assessment ("done")
is reported. Provenance fields added after a result was stored (``algorithms``, ``thresholds``) may
be absent, so older results stay reportable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from qcgate.assessment.document import AssessmentDocument
from qcgate.core.errors import ReportNotBuildable
from qcgate.core.outcomes import SeriesStatus


def reportable(result: AssessmentDocument | Mapping[str, Any]) -> AssessmentDocument:
    """``result`` as a document that can be reported; ReportNotBuildable says what is wrong."""
    if isinstance(result, AssessmentDocument):
        document = result
    else:
        try:
            document = AssessmentDocument.model_validate(result)
        except ValidationError as exc:
            raise ReportNotBuildable(_problem(exc.errors()[0])) from exc
    if document.status != SeriesStatus.DONE:
        raise ReportNotBuildable(
            f'only a "done" assessment can be reported, this one is "{document.status.value}"'
        )
    return document


def _problem(error: ErrorDetails) -> str:
    """One validation error in the reports' words: the field's dotted path, then what is wrong."""
    where = ".".join(str(part) for part in error["loc"])
    context = error.get("ctx") or {}
    if error["type"] == "missing":
        # The words of the parser this replaced, kept so that log searches for them still match.
        field = context.get("field", error["loc"][-1] if error["loc"] else "?")
        return f"the assessment document is malformed: KeyError({field!r})"
    if error["type"] == "enum":
        return f'{where} "{error["input"]}" is not one of {context.get("expected", "")}'
    if error["type"] in ("finite_number", "percent", "device_uid", "outcome"):
        return f"{where} {error['msg']}"
    return f"the assessment document is malformed: {where}: {error['msg']}"
