"""`dagster-daemon` whose backfill daemon loops every N seconds instead of Dagster's fixed 30 s, for tests.

Usage: `python backfill_daemon.py SECONDS run -w workspace.yaml` (the arguments after SECONDS are dagster-daemon's).
Dagster 1.13's backfill loop sleeps `DEFAULT_DAEMON_INTERVAL_SECONDS` (30 s) between iterations and dagster.yaml
cannot change it (benchmarks/RESULTS.md, "Backfill daemon pickup"): a test waiting on a backfill idles up to 30 s
for the pickup and again for COMPLETED. What a backfill does is unchanged; only when the daemon looks again is.
`dagster_servers(..., backfill_loop_s=N)` starts this instead of `dagster-daemon`; benchmarks keep the real one.
"""

from __future__ import annotations

import sys

from dagster._daemon import controller
from dagster._daemon.cli import main

INTERVAL_CONSTANT = "DEFAULT_DAEMON_INTERVAL_SECONDS"


def run(argv: list[str]) -> None:
    seconds, *daemon_args = argv
    if not hasattr(controller, INTERVAL_CONSTANT):  # a Dagster upgrade renamed it: setting it would do nothing
        raise SystemExit(f"dagster._daemon.controller has no {INTERVAL_CONSTANT}: update {__file__}")
    setattr(controller, INTERVAL_CONSTANT, int(seconds))
    sys.argv = [sys.argv[0], *daemon_args]
    main()


if __name__ == "__main__":
    run(sys.argv[1:])
