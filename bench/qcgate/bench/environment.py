"""Where and with what a benchmark's numbers were taken: a result without it cannot be compared."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

from qcgate.core import __version__


def environment() -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "qcgate_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
