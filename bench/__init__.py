"""Benchmarks: ``python -m bench.ingest`` and ``python -m bench.end_to_end`` (docs/benchmarks.md)."""
