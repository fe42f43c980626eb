"""The quality benchmark: real MR evaluation images, degraded and scored by every metric.

``python -m qcgate.bench.quality --out DIR`` (docs/quality-benchmark.md) degrades each real evaluation
image (:mod:`qcgate.bench.quality.real_images`) with the corruption simulator, scores every copy through
``qcgate score``'s code path and reports how well each metric follows the damage.
"""
