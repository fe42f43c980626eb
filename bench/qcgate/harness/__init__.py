"""Real peers for tests and benchmarks: qcgate itself on free ports, DCMTK storescp, Orthanc, a webhook
receiver, and the PostgreSQL/Redis helpers. Packaged so that ``tests/`` and ``qcgate.bench`` share one
harness; it needs the ``dev`` extra and the Debian peers that ``scripts/peers.sh`` installs."""
