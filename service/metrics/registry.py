"""Which metric suites a worker runs. Learned ONNX metrics join here once their manifest ships."""

from __future__ import annotations

from service.metrics.base import MetricSuite
from service.metrics.classic import ClassicMetrics
from service.settings import Settings


def load_suites(settings: Settings) -> list[MetricSuite]:
    """Create every suite once per worker process (ONNX sessions are expensive to build)."""
    return [ClassicMetrics()]
