"""``/api/v1/pairs``: pairwise ranking of two series of one protocol, and the judgements as a dataset.

A reviewer asks for the next pair (``GET /pairs/next``: the closest in quality they have not judged),
records "left", "right" (the better one) or "similar" (``POST /pairs``), and an admin exports every
judgement with a central slab of each series for the offline fine-tuning of ``rank_effnet``
(``GET /pairs/export``; docs/drift.md).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from qcgate.api.deps import Caller, SessionDep, SettingsDep, require_role
from qcgate.assessment.pair_export import export_pairs
from qcgate.core.errors import NotFound
from qcgate.core.settings import Role
from qcgate.store.pairs import Choice, already_judged, next_pair, record_judgement
from qcgate.store.trends import quality_history

router = APIRouter(prefix="/api/v1/pairs", tags=["pairs"])
Uid = Annotated[str, Field(max_length=64, pattern=r"^[0-9.]+$", description="A DICOM UID.")]
_sides = random.SystemRandom()  # which series is shown left: no pattern a reader could learn


class PairPublic(BaseModel):
    left: str
    right: str
    protocol: str
    left_quality: float
    right_quality: float


class JudgementIn(BaseModel):
    left: Uid
    right: Uid
    choice: Choice = Field(description='"left" or "right" is the better series; or "similar".')


class JudgementPublic(BaseModel):
    id: int
    left: str
    right: str
    choice: Choice
    reviewer: str
    protocol: str
    created_at: datetime


ReviewerDep = Annotated[Caller, Depends(require_role(Role.REVIEW))]


@router.get(
    "/next",
    response_model=PairPublic,
    responses={204: {"description": "Every pair of the protocol is judged by this caller."}},
    summary="The next pair of one protocol for this caller to judge",
)
def get_next_pair(
    session: SessionDep,
    caller: ReviewerDep,
    protocol: Annotated[
        str | None, Query(max_length=64, description="ProtocolName, else SeriesDescription.")
    ] = None,
) -> PairPublic | Response:
    pair = next_pair(session, caller.name, protocol, _sides)
    if pair is None:
        return Response(status_code=204)
    left, right = pair
    return PairPublic(
        left=left.series_instance_uid,
        right=right.series_instance_uid,
        protocol=left.protocol,
        left_quality=left.quality,
        right_quality=right.quality,
    )


@router.post(
    "", response_model=JudgementPublic, status_code=201, summary="Record which of two series is better"
)
def post_judgement(session: SessionDep, caller: ReviewerDep, body: JudgementIn) -> JudgementPublic:
    if body.left == body.right:
        raise HTTPException(422, "left and right must be two different series")
    points = {p.series_instance_uid: p for p in quality_history(session, series_uids=[body.left, body.right])}
    for uid in (body.left, body.right):
        if uid not in points:
            raise NotFound(f"no scored series {uid}")
    left, right = points[body.left], points[body.right]
    if left.protocol != right.protocol:
        raise HTTPException(422, f"the series are of two protocols ({left.protocol!r}, {right.protocol!r})")
    if already_judged(session, caller.name, left.series_id, right.series_id):
        raise HTTPException(409, f"client {caller.name!r} already judged this pair")
    judgement = record_judgement(session, left, right, body.choice, caller.name, datetime.now(UTC))
    session.commit()
    return JudgementPublic(
        id=judgement.id,
        left=body.left,
        right=body.right,
        choice=body.choice,
        reviewer=judgement.reviewer,
        protocol=judgement.protocol,
        created_at=judgement.created_at,
    )


@router.get(
    "/export",
    dependencies=[Depends(require_role(Role.ADMIN))],
    summary="Every judgement as a training dataset (written under data_dir/exports)",
)
def get_export(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    return export_pairs(session, settings, settings.data_dir / "exports", datetime.now(UTC))
