"""Schedules and sensors of a use case.

- daily schedule: yesterday's partition through raw -> features -> predictions;
- weekly retrain schedule: training set -> model -> champion;
- landed-data sensor: new or changed source days run as partition ranges
  (consecutive days go in one single-run request, not one run per day);
- champion sensor: a new champion rescores the last `rescore_days` days;
- drift sensor: PSI above the spec's limit on `consecutive_days` days retrains.

Default status comes from ML_PLATFORM_AUTOMATION (`running` or `stopped`,
default `stopped`) so tests and the UI decide, not the code.
"""


import hashlib
import json
import os
from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ml_platform.assets import keys
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.sources import EventSource
from ml_platform.spec import UseCaseSpec

MAX_DAYS_PER_RUN = 366


def default_status() -> dg.DefaultSensorStatus:
    running = os.environ.get("ML_PLATFORM_AUTOMATION", "stopped").lower() == "running"
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def range_run_request(
    days: list[str], run_key: str | None = None, asset_selection: list[dg.AssetKey] | None = None
) -> dg.RunRequest:
    """One run over a contiguous range of daily partitions (a single-run backfill)."""
    if len(days) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=days[0], asset_selection=asset_selection)
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=asset_selection,
        tags={ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]},
    )


def _digest(versions: Iterator[str]) -> str:
    return hashlib.sha1(",".join(versions).encode()).hexdigest()[:16]


def contiguous_ranges(days: list[str], all_keys: list[str]) -> Iterator[list[str]]:
    """Split sorted partition keys into runs of consecutive partitions."""
    position = {key: index for index, key in enumerate(all_keys)}
    current: list[str] = []
    for day in sorted(days, key=position.__getitem__):
        if current and (position[day] != position[current[-1]] + 1 or len(current) >= MAX_DAYS_PER_RUN):
            yield current
            current = []
        current.append(day)
    if current:
        yield current


def build_automation(
    spec: UseCaseSpec,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    daily_job: UnresolvedAssetJobDefinition,
    training_job: UnresolvedAssetJobDefinition,
    rescore_job: UnresolvedAssetJobDefinition,
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    schedule_status = dg.DefaultScheduleStatus(default_status().value)
    daily = dg.build_schedule_from_partitioned_job(
        daily_job,
        name=f"{spec.name}_daily_schedule",
        hour_of_day=int(spec.schedule.daily_at[:2]),
        minute_of_hour=int(spec.schedule.daily_at[3:]),
        default_status=schedule_status,
        description=f"Yesterday's {spec.name} partition: ingest, features, predictions.",
    )
    retrain = dg.ScheduleDefinition(
        name=f"{spec.name}_retrain_schedule",
        job=training_job,
        cron_schedule=spec.schedule.retrain_cron,
        execution_timezone=spec.schedule.timezone,
        default_status=schedule_status,
        description=f"Retrain {spec.name}; the champion moves only if the challenger passes its gates.",
    )

    @dg.sensor(
        name=f"{spec.name}_landed_data_sensor",
        job=daily_job,
        minimum_interval_seconds=30,
        default_status=default_status(),
        description=f"Runs new or changed {spec.name} source days; consecutive days share one run.",
    )
    def landed_data(context: dg.SensorEvaluationContext, source: EventSource, lake: DataLake) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current = source.available_days(spec)
        valid = set(partitions_def.get_partition_keys())
        changed = [day for day, version in current.items() if seen.get(day) != version and day in valid]
        # until a first champion exists there is nothing to score with: ingest and build features only
        has_champion = lake.has_json(keys.champion(spec))
        selection = None if has_champion else [keys.raw_events(spec), keys.features(spec)]
        requests = [
            range_run_request(days, run_key=f"{days[0]}..{days[-1]}@{_digest(current[d] for d in days)}",
                              asset_selection=selection)
            for days in contiguous_ranges(changed, partitions_def.get_partition_keys())
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps({**seen, **current}, sort_keys=True))

    @dg.sensor(
        name=f"{spec.name}_new_champion_sensor",
        job=rescore_job,
        minimum_interval_seconds=30,
        default_status=default_status(),
        description=f"A new {spec.name} champion rescores the last {spec.schedule.rescore_days} feature days.",
    )
    def new_champion(context: dg.SensorEvaluationContext, lake: DataLake) -> dg.SensorResult | dg.SkipReason:
        records = context.instance.fetch_materializations(keys.champion(spec), limit=1).records
        if not records or str(records[0].storage_id) == context.cursor:
            return dg.SkipReason("no new champion")
        event = records[0]
        days = lake.existing_partitions(keys.features(spec))[-spec.schedule.rescore_days :]
        if not days:
            return dg.SensorResult(skip_reason="new champion, but no feature days to rescore", cursor=str(event.storage_id))
        request = range_run_request(days, run_key=f"champion-{event.storage_id}")
        return dg.SensorResult(run_requests=[request], cursor=str(event.storage_id))

    @dg.sensor(
        name=f"{spec.name}_drift_retrain_sensor",
        job=training_job,
        minimum_interval_seconds=60,
        default_status=default_status(),
        description=f"Retrain {spec.name} when feature PSI exceeds {spec.drift.psi_threshold} on "
        f"{spec.drift.consecutive_days} consecutive days.",
    )
    def drift_retrain(context: dg.SensorEvaluationContext, lake: DataLake) -> dg.SensorResult | dg.SkipReason:
        days = lake.existing_partitions(keys.drift(spec))[-spec.drift.consecutive_days :]
        if len(days) < spec.drift.consecutive_days:
            return dg.SkipReason(f"fewer than {spec.drift.consecutive_days} drift partitions")
        drift = lake.read(keys.drift(spec), days)
        worst = drift.groupby("day")["psi"].max()
        if not (worst > spec.drift.psi_threshold).all():
            return dg.SkipReason(f"max PSI by day {worst.round(3).to_dict()} within {spec.drift.psi_threshold}")
        version = drift["champion_version"].iloc[-1]
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key=f"drift-{days[-1]}-champion-{version}",
            tags={"ml_platform/trigger": "drift", "ml_platform/drift_days": f"{days[0]}..{days[-1]}"},
        )])

    return [daily, retrain], [landed_data, new_champion, drift_retrain]
