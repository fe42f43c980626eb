"""One completion sweeper at a time, however many receivers or ``qcgate sweeper`` processes run.

Every process that may sweep holds a :class:`SweeperLeadership` and asks :meth:`~SweeperLeadership.held`
before each sweep. On PostgreSQL the leader holds a session-level advisory lock on a connection of its
own: the lock ends with the connection, so a leader that dies or loses the database hands over within a
sweep interval of the others noticing. On SQLite (one machine by construction) an ``flock`` on a file
beside the database does the same: the kernel drops it with the process.

Two leaders at once would be harmless (the outbox's claims make a double send a no-op), only wasteful;
the lock keeps the sweep, the relay and retention to one process so their load does not grow with the
number of receivers.
"""

from __future__ import annotations

import fcntl
import logging
import os
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from qcgate.core.settings import Settings

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: any bigint the deployment does not use for something else ("qcgate01").
ADVISORY_LOCK_KEY = 0x7163676174653031
LOCK_FILE_NAME = "sweeper.lock"


class SweeperLeadership:
    """Try to become, and stay, the one sweeper; :meth:`held` answers for this sweep."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.effective_database_url)
        self._postgres = url.get_backend_name() == "postgresql"
        # NullPool: closing the connection really closes it, and so really ends the lock.
        self._engine: Engine | None = create_engine(url, poolclass=NullPool) if self._postgres else None
        self._lock_path = settings.data_dir / LOCK_FILE_NAME
        self._connection: Connection | None = None
        self._lock_file: IO[bytes] | None = None

    @property
    def leading(self) -> bool:
        """Whether this process led at its last :meth:`held` (no database round trip)."""
        return self._connection is not None or self._lock_file is not None

    def held(self) -> bool:
        """Whether this process leads now: keeps the lock if it has it, tries to take it if not."""
        was_leading = self.leading
        leads = self._hold_advisory_lock() if self._postgres else self._hold_file_lock()
        if leads != was_leading:
            log.info("completion sweeper %s (pid %d)", "leads" if leads else "stands by", os.getpid())
        return leads

    def release(self) -> None:
        """Give the lock up now (on a clean stop), so another sweeper takes over at its next sweep."""
        if self._connection is not None:
            try:
                self._connection.close()
            except SQLAlchemyError:
                pass  # the lock ends with the connection, however it ends
            self._connection = None
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor drops the flock
            self._lock_file = None
        if self._engine is not None:
            self._engine.dispose()

    def _hold_advisory_lock(self) -> bool:
        assert self._engine is not None
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError:
                log.warning("completion sweeper lost its database connection, and with it the lead")
                self._connection.invalidate()
                self._connection = None
        try:
            connection = self._engine.connect()
            locked = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar_one()
            connection.commit()  # end the implicit transaction; the session-level lock stays
        except SQLAlchemyError as exc:
            log.warning("completion sweeper cannot reach the database: %s", type(exc).__name__)
            return False
        if locked:
            self._connection = connection
            return True
        connection.close()
        return False

    def _hold_file_lock(self) -> bool:
        if self._lock_file is not None:
            return True
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = self._lock_path.open("ab")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return False
        self._lock_file = lock_file
        return True
