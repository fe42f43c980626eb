"""Keyset paging shared by every list endpoint: the cursor is the last row's id, opaque to clients."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Protocol, TypeVar

from fastapi import HTTPException


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=_HasId)


MAX_ID = 2**63 - 1  # the largest row id of any database here (a larger one overflows the driver: a 500)


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(str(row_id).encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    """The id to continue after; 400 for a cursor this API did not issue (only ``encode_cursor`` of an
    id is one: ``int()`` alone would take " 3", "1_0", other scripts' digits and ids out of range)."""
    if not cursor:
        return None
    try:
        row_id = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError as exc:
        raise HTTPException(400, "the cursor is not one this API issued") from exc
    if not 1 <= row_id <= MAX_ID or encode_cursor(row_id) != cursor:
        raise HTTPException(400, "the cursor is not one this API issued")
    return row_id


def split_page(rows: Sequence[Row], limit: int) -> tuple[Sequence[Row], str | None]:
    """Rows fetched with ``limit + 1`` -> (the page, the cursor of the next page or None)."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor(page[-1].id)
