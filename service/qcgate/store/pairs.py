"""Pairwise judgements: which of two series of one protocol a person finds better (docs/drift.md).

The reader protocol of the rank-based metric paper (Tang et al., seed 002): two series side by side,
"left better", "right better" or "similar". A person judges a pair once; the next pair offered is the
closest in quality among the protocol's recent series that this person has not judged, since pairs
the model already separates widely teach it little.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from qcgate.store.tables import PairJudgement
from qcgate.store.trends import QualityPoint, quality_history

Choice = Literal["left", "right", "similar"]
CANDIDATES = 200  # newest scored series of a protocol that pairs are drawn from


def judged_by(session: Session, reviewer: str) -> set[frozenset[int]]:
    """The pairs (as unordered series-id sets) this reviewer has judged."""
    rows = session.execute(
        select(PairJudgement.left_series_id, PairJudgement.right_series_id).where(
            PairJudgement.reviewer == reviewer
        )
    )
    return {frozenset((left, right)) for left, right in rows}


def next_pair(
    session: Session, reviewer: str, protocol: str | None, rng: random.Random
) -> tuple[QualityPoint, QualityPoint] | None:
    """Two scored series of one protocol that ``reviewer`` has not judged, nearest in quality first
    (neighbours in quality order, then next-but-one, ...), sides drawn at random; None when every
    pair is judged. Only the newest :data:`CANDIDATES` series of each protocol are offered."""
    by_protocol: dict[str, list[QualityPoint]] = defaultdict(list)
    for point in quality_history(session, protocol=protocol):
        by_protocol[point.protocol].append(point)
    judged = judged_by(session, reviewer)
    best: tuple[float, QualityPoint, QualityPoint] | None = None
    for points in by_protocol.values():
        ranked = sorted(points[-CANDIDATES:], key=lambda p: p.quality)
        for gap in range(1, len(ranked)):
            pairs = [
                (ranked[i + gap].quality - ranked[i].quality, ranked[i], ranked[i + gap])
                for i in range(len(ranked) - gap)
                if frozenset((ranked[i].series_id, ranked[i + gap].series_id)) not in judged
            ]
            if pairs:
                closest = min(pairs, key=lambda pair: pair[0])
                if best is None or closest[0] < best[0]:
                    best = closest
                break
    if best is None:
        return None
    _, first, second = best
    return (first, second) if rng.random() < 0.5 else (second, first)


def already_judged(session: Session, reviewer: str, left_id: int, right_id: int) -> bool:
    either_order = or_(
        and_(PairJudgement.left_series_id == left_id, PairJudgement.right_series_id == right_id),
        and_(PairJudgement.left_series_id == right_id, PairJudgement.right_series_id == left_id),
    )
    found = session.scalar(select(PairJudgement.id).where(PairJudgement.reviewer == reviewer, either_order))
    return found is not None


def record_judgement(
    session: Session,
    left: QualityPoint,
    right: QualityPoint,
    choice: Choice,
    reviewer: str,
    now: datetime,
) -> PairJudgement:
    """Store one judgement (the caller checked both series share a protocol and the pair is new)."""
    judgement = PairJudgement(
        left_series_id=left.series_id,
        right_series_id=right.series_id,
        choice=choice,
        reviewer=reviewer,
        protocol=left.protocol[:64],
        created_at=now,
    )
    session.add(judgement)
    session.flush()
    return judgement


def all_judgements(session: Session) -> list[PairJudgement]:
    """Every judgement, oldest first, with both series loaded."""
    return list(session.scalars(select(PairJudgement).order_by(PairJudgement.id)))
