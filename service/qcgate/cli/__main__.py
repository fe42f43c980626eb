"""``python -m qcgate.cli``: the same as the ``qcgate`` console script."""

from qcgate.cli.main import main

raise SystemExit(main())
