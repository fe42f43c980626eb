"""Refused logins per client address, so that guessing tokens at /login is slow.

Named tokens are long and random, so guessing one is already hopeless; the throttle keeps a
misconfigured script or a scanner from filling the log and the CPU. Per API process and in memory:
behind several replicas the limit applies per replica. At most :data:`MAX_ADDRESSES` addresses are
tracked (the oldest forgotten first), so a flood of addresses cannot grow it without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

MAX_REFUSALS = 10  # refused logins an address may make ...
WINDOW_S = 600.0  # ... in this many seconds, before it must wait
MAX_ADDRESSES = 10_000


class LoginThrottle:
    def __init__(self, max_refusals: int = MAX_REFUSALS, window_s: float = WINDOW_S) -> None:
        self._max, self._window = max_refusals, window_s
        self._refusals: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, address: str, now: float | None = None) -> float:
        """Seconds ``address`` must wait before its next try (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(address, now)
            if len(recent) < self._max:
                return 0.0
            return max(0.0, recent[0] + self._window - now)

    def refused(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(address, now).append(now)
            self._refusals.move_to_end(address)
            while len(self._refusals) > MAX_ADDRESSES:
                self._refusals.popitem(last=False)

    def _recent(self, address: str, now: float) -> deque[float]:
        recent = self._refusals.setdefault(address, deque())
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        return recent
