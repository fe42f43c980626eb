"""Benchmarks: ``python -m qcgate.bench.ingest``, ``python -m qcgate.bench.end_to_end`` and the others
that docs/benchmarks.md lists."""
