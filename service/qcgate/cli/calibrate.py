"""``qcgate calibrate``: propose per-protocol verdict limits from the recorded reviews, or apply one.

Without ``--apply`` it fits a new proposal (stored, not in force) and prints, per protocol, the limits
in force and the proposed ones with the sensitivity and specificity each had on the reviews. With
``--apply N`` it puts proposal N in force and fits nothing. Exit status: 0, or 2 for an unknown
proposal.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from qcgate.assessment.site_limits import make_proposal, proposal_json
from qcgate.assessment.verdict import model_identity, shipped_verdict_model
from qcgate.core.settings import get_settings
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.reviews import apply_proposal, proposal_rows

APPLIED_BY = "qcgate calibrate"


def _percent(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, float) else "-"


def _pair(limits: dict[str, float], name: str) -> str:
    return f"{limits.get(name + '_warn', 0):g}/{limits.get(name + '_fail', 0):g}"


def _change(row: dict[str, Any], measure: str) -> str:
    return f"{_percent(row['current'].get(measure))} -> {_percent(row['proposed'].get(measure))}"


def _table(rows: list[dict[str, Any]]) -> str:
    """One line per protocol: reviews, limits in force and proposed, and how each did on the reviews."""
    columns = ("protocol", "reviews", "non-diag", "quality", "severity", "sens", "spec", "fit")
    lines = ["\t".join(columns)]
    for row in rows:
        now, new = row["current_limits"], row["limits"]
        fit = "fitted" if row["fitted"] else "too few reviews"
        if row["pinned"]:
            fit += ", pinned by settings"
        cells = (
            row["protocol"] or "(all protocols)",
            str(row["reviews"]),
            str(row["non_diagnostic"]),
            f"{_pair(now, 'quality')} -> {_pair(new, 'quality')}",
            f"{_pair(now, 'severity')} -> {_pair(new, 'severity')}",
            _change(row, "sensitivity"),
            _change(row, "specificity"),
            fit,
        )
        lines.append("\t".join(cells))
    return "\n".join(lines)


def calibrate(apply: int | None, min_count: int, as_json: bool) -> int:
    settings = get_settings()
    if settings.migrate_on_start:
        upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        with sessions.begin() as session:
            if apply is not None:
                rows = apply_proposal(session, apply, by=APPLIED_BY, at=datetime.now(UTC))
                if not rows:
                    sys.stderr.write(f"qcgate calibrate: no limits proposal {apply}\n")
                    return 2
                number = apply
            else:
                model = model_identity(shipped_verdict_model())
                number, _ = make_proposal(session, settings, model, min_count=min_count, at=datetime.now(UTC))
                rows = proposal_rows(session, number)
            shown = proposal_json(rows, settings)
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps({"proposal": number, "applied": apply is not None, "rows": shown}) + "\n")
        return 0
    verb = "applied" if apply is not None else "proposed (not applied)"
    sys.stdout.write(f"limits proposal {number}, {verb}\n{_table(shown)}\n")
    if apply is None:
        sys.stdout.write(f"apply it with: qcgate calibrate --apply {number}\n")
    return 0
