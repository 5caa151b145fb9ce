"""The new-champion sensor: a new champion (training, promotion, rollback) rescores the last
`rescore_days` feature days in one ranged run.

A plain sensor rather than `@dg.asset_sensor`: the champion event's storage id is both the run key
and what the days' latest predictions are compared with, and an asset sensor hands over the event
without it.
"""

from __future__ import annotations

import dagster as dg

from ml_platform.assets import keys
from ml_platform.automation.runs import default_status, range_run_request
from ml_platform.dagster_internals import UnresolvedAssetJobDefinition
from ml_platform.io.parquet_lake import DataLake
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec


def build_new_champion_sensor(
    spec: UseCaseSpec, settings: Settings, rescore_job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{spec.name}_new_champion_sensor",
        job=rescore_job,
        minimum_interval_seconds=settings.sensor_interval(30),
        default_status=default_status(settings),
        description=f"A new {spec.name} champion rescores the last {spec.schedule.rescore_days} feature days.",
    )
    def new_champion(context: dg.SensorEvaluationContext, lake: DataLake) -> dg.SensorResult | dg.SkipReason:
        records = context.instance.fetch_materializations(keys.champion(spec), limit=1).records
        if not records or str(records[0].storage_id) == context.cursor:
            return dg.SkipReason("no new champion")
        changed = records[0].storage_id
        days = lake.existing_partitions(keys.features(spec))[-spec.schedule.rescore_days :]
        if not days:
            return dg.SensorResult(skip_reason="new champion, but no feature days to rescore", cursor=str(changed))
        if _scored_since(context.instance, spec, days, changed):  # e.g. the demo: trained, then scored them
            return dg.SensorResult(
                skip_reason=f"the last {len(days)} days were scored after the latest champion change",
                cursor=str(changed),
            )
        request = range_run_request(days, run_key=f"champion-{changed}")
        return dg.SensorResult(run_requests=[request], cursor=str(changed))

    return new_champion


def _scored_since(instance: dg.DagsterInstance, spec: UseCaseSpec, days: list[str], storage_id: int) -> bool:
    """Whether every one of `days` has predictions materialized after the event `storage_id`."""
    scored = instance.event_log_storage.get_latest_storage_id_by_partition(
        keys.predictions(spec), dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(days)
    )
    return all(scored.get(day, 0) > storage_id for day in days)
