"""A person's review inside the SR: the reviewer as a person observer, their finding as a group.

A review issues a new revision of the series' SR: the same measurement group qcgate wrote, plus a
second TID 1501 group ("qcgate human review") whose Quality Finding is the person's answer
(acceptable or non-diagnostic) and whose Image artifact(s) evaluations are the kinds they saw. The
reviewer joins the Observation Context as a Person observer (TID 1003), named by the API client's
name. The free-text comment stays in the database and REST: it may name the patient, and TID 1501
has no row for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from highdicom.sr import (
    MeasurementsAndQualitativeEvaluations,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    QualitativeEvaluation,
    TrackingIdentifier,
)
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code

from qcgate.core.errors import ReportNotBuildable
from qcgate.sr import codes
from qcgate.sr.device import derived_uid

TRACKING_IDENTIFIER = "qcgate human review"
REVIEW_VERDICTS = {
    False: Code("acceptable", codes.PRIVATE_SCHEME, "Diagnostically acceptable"),
    True: Code("non_diagnostic", codes.PRIVATE_SCHEME, "Non-diagnostic, repeat advised"),
}


@dataclass(frozen=True)
class HumanReview:
    """What the SR says of a review: who, their answer, the artifact kinds they saw, and its id."""

    reviewer: str
    non_diagnostic: bool
    kinds: tuple[str, ...]
    review_id: int


def person_name(reviewer: str) -> str:
    """The client's name as a PN value: the family-name component alone (the trailing caret says so),
    PN delimiters and control characters replaced, at most 63 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9 ._-]", "_", reviewer).strip()[:63]
    return f"{cleaned or 'reviewer'}^"


def reviewer_observer(review: HumanReview) -> ObserverContext:
    return ObserverContext(
        observer_type=dcm_codes.DCM.Person,
        observer_identifying_attributes=PersonObserverIdentifyingAttributes(
            name=person_name(review.reviewer)
        ),
    )


def review_group(review: HumanReview, series_instance_uid: str) -> MeasurementsAndQualitativeEvaluations:
    unknown = [kind for kind in review.kinds if kind not in codes.ARTIFACT_KINDS]
    if unknown:
        raise ReportNotBuildable(f"review {review.review_id} names unknown artifact kinds {unknown}")
    evaluations = [QualitativeEvaluation(codes.QUALITY_FINDING, REVIEW_VERDICTS[review.non_diagnostic])]
    evaluations += [
        QualitativeEvaluation(codes.IMAGE_ARTIFACTS, codes.ARTIFACT_KINDS[kind]) for kind in review.kinds
    ]
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=derived_uid("review", series_instance_uid, str(review.review_id)),
            identifier=TRACKING_IDENTIFIER,
        ),
        finding_type=codes.QUALITY_ASSESSMENT,
        qualitative_evaluations=evaluations,
    )
