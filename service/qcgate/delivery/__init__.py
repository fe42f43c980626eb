"""Results out: quality reports (SR, KOS) kept and published, routing rules, delivery jobs, webhooks.

After a worker stores an assessment, :mod:`qcgate.delivery.publish` writes the reports and, in the
same transaction, one delivery job per action the routing rules ask for (the outbox). A Celery task
per job runs :mod:`qcgate.delivery.jobs`, which sends through :mod:`~qcgate.delivery.dicom_send` or
:mod:`~qcgate.delivery.webhooks`; :mod:`~qcgate.worker.relay` re-sends due and lost jobs.
See ``docs/delivery.md``.
"""
