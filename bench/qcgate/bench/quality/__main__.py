"""``python -m qcgate.bench.quality``: see :mod:`qcgate.bench.quality.cli`."""

from qcgate.bench.quality.cli import main

raise SystemExit(main())
