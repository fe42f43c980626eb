"""Which verdict limits a series gets, and proposals of new ones from the recorded reviews.

Precedence, for a series of protocol P judged by verdict model M:

1. ``pinned_limits[P]``, else ``pinned_limits["*"]``: a setting wins over anything learned;
2. the applied site limits of P fitted for M, else the applied global fit for M;
3. ``verdict_limits``.

Limits fitted for another verdict model never apply: its quality means something else. The source
(``settings``, ``pinned``, or ``site_limits/<proposal>``) goes into the result's provenance.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from qcgate.assessment.calibration import GLOBAL, ProtocolProposal, ReviewedCase, propose_limits
from qcgate.core.outcomes import Flag
from qcgate.core.settings import Settings, VerdictLimits
from qcgate.store.reviews import (
    ReviewVerdict,
    applied_limit_rows,
    limit_row,
    new_proposal_number,
    protocol_of,
    reviewed_assessments,
)
from qcgate.store.tables import Assessment, SiteLimit

__all__ = [
    "ChosenLimits",
    "agreement",
    "assessment_model",
    "chosen_limits",
    "make_proposal",
    "proposal_json",
    "reviewed_cases",
]

SETTINGS, PINNED = "settings", "pinned"


@dataclass(frozen=True)
class ChosenLimits:
    limits: VerdictLimits
    source: str  # settings | pinned | site_limits/<proposal>


def _row_limits(row: SiteLimit) -> VerdictLimits:
    return VerdictLimits(
        quality_warn=row.quality_warn,
        quality_fail=row.quality_fail,
        severity_warn=row.severity_warn,
        severity_fail=row.severity_fail,
    )


def chosen_limits(
    session: Session, settings: Settings, protocol: str, model: Mapping[str, str]
) -> ChosenLimits:
    """The limits a series of ``protocol`` gets under verdict model ``model`` (its identity)."""
    for key in (protocol, "*"):
        if key in settings.pinned_limits:
            return ChosenLimits(settings.pinned_limits[key], PINNED)
    rows = {row.protocol: row for row in applied_limit_rows(session, model.get("sha256", ""))}
    row = rows.get(protocol) or rows.get(GLOBAL)
    if row is not None:
        return ChosenLimits(_row_limits(row), f"site_limits/{row.proposal}")
    return ChosenLimits(settings.verdict_limits, SETTINGS)


def assessment_model(assessment: Assessment) -> str:
    """The sha256 of the verdict model that made an assessment ("" when the provenance lacks it)."""
    verdict = (assessment.provenance or {}).get("verdict") or {}
    return str((verdict.get("model") or {}).get("sha256", ""))


def _worst_severity(assessment: Assessment) -> float:
    severities = [float(f.get("severity", 0.0)) for f in assessment.findings or [] if isinstance(f, dict)]
    return max(severities, default=0.0)


def reviewed_cases(session: Session, model_sha256: str) -> list[ReviewedCase]:
    """Reviews of assessments the verdict model ``model_sha256`` made and that have a quality; the
    newest review of each assessment counts (a person changing their mind is not two readings)."""
    newest: dict[int, ReviewedCase] = {}
    for review, assessment, series in reviewed_assessments(session):
        if assessment.quality is None or assessment_model(assessment) != model_sha256:
            continue
        newest[assessment.id] = ReviewedCase(
            protocol=protocol_of(series),
            quality=float(assessment.quality),
            severity=_worst_severity(assessment),
            non_diagnostic=review.verdict == ReviewVerdict.NON_DIAGNOSTIC,
        )
    return list(newest.values())


def make_proposal(
    session: Session, settings: Settings, model: Mapping[str, str], *, min_count: int, at: datetime
) -> tuple[int, list[ProtocolProposal]]:
    """Fit, store (not applied) and return a new proposal over the reviews of ``model``."""
    cases = reviewed_cases(session, model.get("sha256", ""))

    def current(protocol: str) -> VerdictLimits:
        return chosen_limits(session, settings, protocol, model).limits

    proposals = propose_limits(cases, current, min_count=min_count)
    number = new_proposal_number(session)
    for item in proposals:
        session.add(
            limit_row(
                number,
                item.protocol,
                dict(model),
                item.limits.model_dump(),
                fitted=item.fitted,
                reviews=item.reviews,
                non_diagnostic=item.non_diagnostic,
                evaluation={
                    "current": item.current.to_json(),
                    "proposed": item.proposed.to_json(),
                    "current_limits": current(item.protocol).model_dump(),
                },
                at=at,
            )
        )
    session.flush()
    return number, proposals


def proposal_json(rows: Iterable[SiteLimit], settings: Settings) -> list[dict[str, Any]]:
    """Rows of a proposal as REST and ``qcgate calibrate --json`` show them."""
    return [
        {
            "proposal": row.proposal,
            "protocol": row.protocol,
            "limits": _row_limits(row).model_dump(),
            "fitted": row.fitted,
            "pinned": (row.protocol or "*") in settings.pinned_limits,
            "reviews": row.reviews,
            "non_diagnostic": row.non_diagnostic,
            "current": row.evaluation.get("current", {}),
            "proposed": row.evaluation.get("proposed", {}),
            "current_limits": row.evaluation.get("current_limits", {}),
            "model": {"version": row.model_version, "sha256": row.model_sha256},
            "applied": row.applied,
            "applied_at": row.applied_at.isoformat() if row.applied_at else None,
            "applied_by": row.applied_by,
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


def cohen_kappa(table: Mapping[tuple[bool, bool], int]) -> float | None:
    """Cohen's kappa of two raters' yes/no answers from the 2x2 counts ``(rater_a, rater_b) -> n``;
    None when it is undefined (no case, or both raters gave one answer only)."""
    total = sum(table.values())
    if total == 0:
        return None
    observed = (table.get((True, True), 0) + table.get((False, False), 0)) / total
    a_yes = (table.get((True, True), 0) + table.get((True, False), 0)) / total
    b_yes = (table.get((True, True), 0) + table.get((False, True), 0)) / total
    expected = a_yes * b_yes + (1 - a_yes) * (1 - b_yes)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def agreement(session: Session, by: str) -> list[dict[str, Any]]:
    """Per station or protocol: how often people and qcgate agreed. A person's non-diagnostic agrees
    with a warn or fail flag, acceptable with a pass; reviews of assessments without a flag are left out."""
    tables: dict[str, dict[tuple[bool, bool], int]] = defaultdict(lambda: defaultdict(int))
    for review, assessment, series in reviewed_assessments(session):
        if assessment.flag is None:
            continue
        key = series.station_name if by == "station" else protocol_of(series)
        person = review.verdict == ReviewVerdict.NON_DIAGNOSTIC
        machine = assessment.flag in (Flag.WARN, Flag.FAIL)
        tables[key][(person, machine)] += 1
    rows = []
    for key in sorted(tables):
        table = tables[key]
        total = sum(table.values())
        agree = table[(True, True)] + table[(False, False)]
        rows.append(
            {
                by: key,
                "reviews": total,
                "agree": agree,
                "agreement": agree / total,
                "kappa": cohen_kappa(table),
                "non_diagnostic": table[(True, True)] + table[(True, False)],
                "flagged": table[(True, True)] + table[(False, True)],
            }
        )
    return rows
