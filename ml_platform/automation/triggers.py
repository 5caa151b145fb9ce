"""Schedules, sensors and declarative automation of a use case, one module per trigger:

- `schedules`: yesterday's partition daily; retraining on the spec's cron;
- `landed_data`: new or changed source days run as partition ranges;
- `new_champion`: a new champion rescores the last `rescore_days` days in one ranged run;
- `drift_retrain`: PSI above the spec's limit on consecutive days retrains, once per episode;
- `performance_retrain`: the champion's live metric outside its holdout interval on consecutive days
  retrains, once per episode, with an alert;
- the automation-condition sensor evaluates conditions such as
  `conditions.FEATURES_FOLLOW_RAW` on the assets.

`runs` holds what they share: range run requests, run keys, default status.
"""

from __future__ import annotations

import dagster as dg

from ml_platform.automation.drift_retrain import build_drift_retrain_sensor
from ml_platform.automation.landed_data import build_landed_data_sensor
from ml_platform.automation.new_champion import build_new_champion_sensor
from ml_platform.automation.performance_retrain import build_performance_retrain_sensor
from ml_platform.automation.runs import default_status
from ml_platform.automation.schedules import build_schedules
from ml_platform.dagster_internals import UnresolvedAssetJobDefinition, UnresolvedPartitionedAssetScheduleDefinition
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec


def build_automation(
    spec: UseCaseSpec,
    settings: Settings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    daily_job: UnresolvedAssetJobDefinition,
    training_job: UnresolvedAssetJobDefinition,
    rescore_job: UnresolvedAssetJobDefinition,
) -> tuple[list[dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition], list[dg.SensorDefinition]]:
    sensors = [
        build_landed_data_sensor(spec, settings, partitions_def, daily_job),
        build_new_champion_sensor(spec, settings, rescore_job),
        build_drift_retrain_sensor(spec, settings, training_job),
        build_performance_retrain_sensor(spec, settings, training_job),
    ]
    return build_schedules(spec, settings, daily_job, training_job), sensors


def build_automation_condition_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the assets' automation conditions (features following raw events) for every use case."""
    return dg.AutomationConditionSensorDefinition(
        "automation_conditions",
        target=dg.AssetSelection.all(),
        default_status=default_status(settings),
        minimum_interval_seconds=settings.sensor_interval(30),
    )
