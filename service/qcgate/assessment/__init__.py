"""Assessing a series: the pipeline that turns a series' files into one scored, flagged result.

Knows nothing of Celery, the database or HTTP; the worker, ``qcgate score`` and the benchmarks all
call it, so they cannot disagree.
"""
