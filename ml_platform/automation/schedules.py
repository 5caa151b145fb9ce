"""A use case's schedules: yesterday's partition daily, and retraining on the spec's cron."""

from __future__ import annotations

import dagster as dg

from ml_platform.automation.runs import default_status
from ml_platform.dagster_internals import UnresolvedAssetJobDefinition, UnresolvedPartitionedAssetScheduleDefinition
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec


def build_schedules(
    spec: UseCaseSpec,
    settings: Settings,
    daily_job: UnresolvedAssetJobDefinition,
    training_job: UnresolvedAssetJobDefinition,
) -> list[dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition]:
    status = dg.DefaultScheduleStatus(default_status(settings).value)
    daily = dg.build_schedule_from_partitioned_job(
        daily_job,
        name=f"{spec.name}_daily_schedule",
        hour_of_day=int(spec.schedule.daily_at[:2]),
        minute_of_hour=int(spec.schedule.daily_at[3:]),
        default_status=status,
        description=f"Yesterday's {spec.name} partition: ingest, features, predictions."
        + (
            " A day without a file is stored as a day without events (source.missing_days: empty); if its file lands "
            "later, the landed-data sensor reruns it."
            if spec.missing_days == "empty"
            else ""
        ),
    )
    retrain = dg.ScheduleDefinition(
        name=f"{spec.name}_retrain_schedule",
        job=training_job,
        cron_schedule=spec.schedule.retrain_cron,
        execution_timezone=spec.schedule.timezone,
        default_status=status,
        description=f"Retrain {spec.name}; the champion moves only if the challenger passes its gates.",
    )
    return [daily, retrain]
