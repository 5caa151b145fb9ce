"""Run a use case's assets in-process against a Dagster instance (demo, CLI, tests, benchmarks).

The UI and the daemon launch the same assets through the same definitions;
this is the shortest path from a shell to a recorded, gated materialization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from ml_platform.assets import keys
from ml_platform.automation.runs import range_tags
from ml_platform.spec import UseCaseSpec

DAILY_STAGES = ("raw_events", "features", "predictions")
MONITORING_STAGES = ("drift",)
TRAINING_STAGES = ("training_set", "model", "champion")


def materialize_stages(
    defs: dg.Definitions,
    spec: UseCaseSpec,
    stages: Sequence[str],
    instance: dg.DagsterInstance,
    days: Sequence[str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    raise_on_error: bool = False,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """Materialize the named stages of one use case, over a day range when `days` is given."""
    selection = [keys.of_stage(spec, stage) for stage in stages]
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    return dg.materialize(
        assets=list(defs.assets or []),
        selection=selection,
        instance=instance,
        resources=dict(defs.resources or {}),
        # one day runs as a plain partitioned run (as schedules and sensors launch it), more as a range
        partition_key=days[0] if days and len(days) == 1 else None,
        # readable in the UI's run list: which use case, which stages
        tags={"ml_platform/use_case": spec.name, "ml_platform/stage": " -> ".join(stages),
              **(range_tags(days) if days and len(days) > 1 else {})},
        run_config=run_config,
        raise_on_error=raise_on_error,
    )
