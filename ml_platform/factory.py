"""Spec -> Dagster definitions. The one place a use case becomes assets, jobs and triggers.

Nothing here knows any particular use case: every name, key, check, window
and schedule comes from the spec.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ml_platform.assets import keys
from ml_platform.assets.daily import daily_stages
from ml_platform.assets.monitoring import drift_stage
from ml_platform.assets.performance import build_performance_asset
from ml_platform.assets.range_step import build_range_step
from ml_platform.assets.report import report_stages
from ml_platform.assets.shadow import build_live_evidence_sensor, shadow_assets
from ml_platform.assets.training import build_training_assets
from ml_platform.automation.champion_jobs import build_champion_jobs
from ml_platform.automation.runs import default_status
from ml_platform.automation.triggers import build_automation
from ml_platform.k8s.executors import training_executor
from ml_platform.resources.sources import source_resource, source_resource_key
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec


def daily_partitions(spec: UseCaseSpec, start_override: dt.date | None = None) -> dg.DailyPartitionsDefinition:
    """The spec's days, from `start_override` (ML_PLATFORM_PARTITIONS_START) where that is later than its start_date."""
    start = max(spec.start_date, start_override) if start_override else spec.start_date
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone=spec.schedule.timezone)


# Gate failures are deterministic: let run retries (dagster.yaml, the Helm values) redo crashed
# workers, never runs that a failed gate stopped, whatever the deployed instance's default.
NO_RETRY_ON_GATE_FAILURE = {"dagster/retry_on_asset_or_op_failure": "false"}


def build_use_case(spec: UseCaseSpec, settings: Settings) -> dg.Definitions:
    partitions_def = daily_partitions(spec, settings.partitions_start)
    stages = [
        *daily_stages(spec, partitions_def),
        drift_stage(spec, partitions_def),
        *report_stages(spec, partitions_def),
    ]
    assets = [
        build_range_step(spec, partitions_def, stages),
        *build_training_assets(spec, settings),
        *shadow_assets(spec, partitions_def),
        build_performance_asset(spec, partitions_def),
    ]
    reports = [keys.report(spec)] if spec.label.task == "multiclass" else []
    daily_job = dg.define_asset_job(
        f"{spec.name}_daily",
        selection=dg.AssetSelection.assets(
            keys.raw_events(spec), keys.features(spec), keys.predictions(spec), keys.drift(spec), *reports
        ),
        description=f"{spec.name}: ingest and gate a day range, compute features, score with the champion, "
        "measure drift" + (", write the daily report." if reports else "."),
        tags={"ml_platform/use_case": spec.name, "ml_platform/kind": "daily", **NO_RETRY_ON_GATE_FAILURE},
        executor_def=dg.in_process_executor,  # no GPU step: one process (one pod) per run, wherever it runs
    )
    training_job = dg.define_asset_job(
        f"{spec.name}_training",
        selection=dg.AssetSelection.assets(keys.training_set(spec), keys.model(spec), keys.champion(spec)),
        description=f"{spec.name}: build the training set, train a challenger, promote it if it passes the gates.",
        tags={"ml_platform/use_case": spec.name, "ml_platform/kind": "training", **NO_RETRY_ON_GATE_FAILURE},
        executor_def=training_executor(settings),
    )
    rescore_job = dg.define_asset_job(
        f"{spec.name}_rescore",
        selection=dg.AssetSelection.assets(keys.predictions(spec), keys.drift(spec), *reports),
        description=f"{spec.name}: recompute predictions and drift with the current champion.",
        tags={"ml_platform/use_case": spec.name, "ml_platform/kind": "rescore", **NO_RETRY_ON_GATE_FAILURE},
        executor_def=dg.in_process_executor,
    )
    schedules, sensors = build_automation(spec, settings, partitions_def, daily_job, training_job, rescore_job)
    if spec.gates.live_evidence_days:
        sensors.append(build_live_evidence_sensor(spec, default_status(settings), settings.sensor_interval(60)))
    return dg.Definitions(
        assets=assets,
        jobs=[daily_job, training_job, rescore_job, *build_champion_jobs(spec)],
        schedules=schedules,
        sensors=sensors,
        resources={source_resource_key(spec): source_resource(spec, settings.data_dir)},
    )
