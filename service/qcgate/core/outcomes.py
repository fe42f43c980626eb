"""The words of a series' outcome, shared by the pipeline, the store and the API."""

from __future__ import annotations

import enum


class SeriesStatus(enum.StrEnum):
    RECEIVING = "receiving"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    NOT_ASSESSABLE = "not_assessable"


class Flag(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
