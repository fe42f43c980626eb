"""FastAPI application under ``/api/v1``: series, studies, reports, deliveries, destinations, health
and Prometheus metrics."""
