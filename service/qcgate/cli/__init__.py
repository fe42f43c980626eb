"""The ``qcgate`` command line: serve (all in one), scp, api, worker, score, demo and bench."""
