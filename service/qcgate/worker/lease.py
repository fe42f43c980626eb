"""The scoring worker's side of the series lease: renew it while the work goes on, up to a limit.

The claim gives the worker a lease of ``scoring_lease_s`` (:func:`qcgate.store.repository.claim_series`);
this thread renews it every third of that, so the sweeper never takes a series from a worker that is
merely slow. It stops renewing after ``scoring_timeout_s``: a scoring that hangs then lapses like a
crash, the series is re-queued (or ends failed after ``max_scoring_attempts``), and the late result
is refused when it arrives, because its lease is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qcgate.core.settings import Settings
from qcgate.store.repository import renew_lease

log = logging.getLogger(__name__)


class LeaseKeeper(threading.Thread):
    """Renews the lease ``token`` on ``series_id`` in the background; use as a context manager."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], series_id: int, token: str
    ) -> None:
        super().__init__(name=f"lease-{series_id}", daemon=True)
        self._sessions, self._series_id, self._token = sessions, series_id, token
        self._lease = timedelta(seconds=settings.scoring_lease_s)
        self._timeout_s = settings.scoring_timeout_s
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._stopping.wait(self._lease.total_seconds() / 3):
            if time.monotonic() - started > self._timeout_s:
                log.warning(
                    "series %d: scoring passed %.0f s, its lease is left to lapse",
                    self._series_id,
                    self._timeout_s,
                )
                return
            try:
                with self._sessions.begin() as session:
                    held = renew_lease(session, self._series_id, self._token, datetime.now(UTC) + self._lease)
            except SQLAlchemyError as exc:  # the database is down: try again at the next third
                log.warning(
                    "series %d: lease not renewed, database unavailable: %s",
                    self._series_id,
                    type(exc).__name__,
                )
                continue
            if not held:  # taken away (a rescore): the result will be refused when it is stored
                return

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopping.set()
        self.join()
