"""``/api/v1/limits``: the verdict limits in force, and proposals learned from reviews (admin).

``GET`` shows the settings' limits, the pinned ones, the site limits applied for the current verdict
model and the newest proposal. ``POST /proposal`` fits a new proposal from the recorded reviews and
stores it without applying it; ``POST /{proposal_id}/apply`` puts one in force (``qcgate calibrate``
does the same from the command line).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from qcgate.api.deps import Caller, SessionDep, SettingsDep, require_role
from qcgate.assessment.site_limits import make_proposal, proposal_json
from qcgate.assessment.verdict import model_identity, shipped_verdict_model
from qcgate.core.errors import NotFound
from qcgate.core.settings import Role
from qcgate.store.reviews import applied_limit_rows, apply_proposal, proposal_rows

router = APIRouter(prefix="/api/v1/limits", tags=["limits"])
log = logging.getLogger(__name__)
DEFAULT_MIN_COUNT = 20


class LimitsPublic(BaseModel):
    model: dict[str, str] = Field(description="The verdict model in use: applied limits are keyed by it.")
    settings: dict[str, float] = Field(description="verdict_limits: where nothing else applies.")
    pinned: dict[str, dict[str, float]] = Field(description="pinned_limits by protocol: they win.")
    applied: list[dict[str, Any]] = Field(description="Site limits in force for this model, per protocol.")
    proposal: list[dict[str, Any]] = Field(description="The newest proposal's rows ([] when none).")
    report_only: bool


class ProposalPublic(BaseModel):
    proposal: int
    rows: list[dict[str, Any]] = Field(
        description="Per protocol ('' = every protocol): limits, reviews, and the sensitivity and"
        " specificity the limits in force (current) and these (proposed) had on them."
    )


@router.get("", response_model=LimitsPublic, summary="Verdict limits in force and the newest proposal")
def get_limits(session: SessionDep, settings: SettingsDep) -> LimitsPublic:
    model = model_identity(shipped_verdict_model())
    return LimitsPublic(
        model=model,
        settings=settings.verdict_limits.model_dump(),
        pinned={key: value.model_dump() for key, value in settings.pinned_limits.items()},
        applied=proposal_json(applied_limit_rows(session, model["sha256"]), settings),
        proposal=proposal_json(proposal_rows(session), settings),
        report_only=settings.report_only,
    )


@router.post(
    "/proposal",
    response_model=ProposalPublic,
    status_code=201,
    summary="Fit limits from the recorded reviews (stored, not applied)",
)
def post_proposal(
    session: SessionDep,
    settings: SettingsDep,
    caller: Annotated[Caller, Depends(require_role(Role.ADMIN))],
    min_count: Annotated[int, Query(ge=2, le=100_000)] = DEFAULT_MIN_COUNT,
) -> ProposalPublic:
    number, _ = make_proposal(
        session,
        settings,
        model_identity(shipped_verdict_model()),
        min_count=min_count,
        at=datetime.now(UTC),
    )
    session.commit()
    log.info("limits proposal %d fitted by %s", number, caller.name)
    return ProposalPublic(proposal=number, rows=proposal_json(proposal_rows(session, number), settings))


@router.post(
    "/{proposal_id}/apply", response_model=ProposalPublic, summary="Put a proposal's limits in force"
)
def post_apply(
    session: SessionDep,
    settings: SettingsDep,
    proposal_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    caller: Annotated[Caller, Depends(require_role(Role.ADMIN))],
) -> ProposalPublic:
    rows = apply_proposal(session, proposal_id, by=caller.name, at=datetime.now(UTC))
    if not rows:
        raise NotFound(f"no limits proposal {proposal_id}")
    session.commit()
    log.info("limits proposal %d applied by %s", proposal_id, caller.name)
    return ProposalPublic(proposal=proposal_id, rows=proposal_json(rows, settings))
