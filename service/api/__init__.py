"""FastAPI application under ``/api/v1``: series, studies, health and Prometheus metrics."""
