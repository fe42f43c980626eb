"""The worker side: the Celery app and its thin tasks, the assessment of a queued series, the completion
sweeper (outbox relay), the delivery relay and the process supervisor behind ``qcgate serve``."""
