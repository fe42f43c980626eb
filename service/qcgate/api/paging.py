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


def decode_cursor(cursor: str | None) -> int | None:
    """The id to continue after; 400 for a cursor this API did not issue."""
    if not cursor:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError as exc:
        raise HTTPException(400, "the cursor is not one this API issued") from exc


def split_page(rows: Sequence[Row], limit: int) -> tuple[Sequence[Row], str | None]:
    """Rows fetched with ``limit + 1`` -> (the page, the cursor of the next page or None)."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, base64.urlsafe_b64encode(str(page[-1].id).encode()).decode()
