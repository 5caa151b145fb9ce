"""The performance sensor: the champion's gate metric below its holdout interval on `monitoring.consecutive_days`
consecutive scored days retrains, once per episode (a day within the bound ends it), and the alert carries the
numbers. The days and the rule are those of the `performance_within_holdout` check
(`ml_platform/monitoring/degradation.py`), read from the performance table in the lake as drift's sensor reads drift.
"""

from __future__ import annotations

import json

import dagster as dg

from ml_platform.assets import keys
from ml_platform.automation.runs import default_status
from ml_platform.dagster_internals import UnresolvedAssetJobDefinition
from ml_platform.io.parquet_lake import DataLake
from ml_platform.monitoring.degradation import BOUND, VERSION, episode, gate_column
from ml_platform.resources.alerts import AlertResource
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec

LOOKBACK_DAYS = 60  # an episode longer than this is still one episode: it started before the window


def build_performance_retrain_sensor(
    spec: UseCaseSpec, settings: Settings, training_job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    column, needed = gate_column(spec), spec.monitoring.consecutive_days

    @dg.sensor(
        name=f"{spec.name}_performance_retrain_sensor",
        job=training_job,
        minimum_interval_seconds=settings.sensor_interval(60),
        default_status=default_status(settings),
        description=f"Retrain {spec.name} once per degradation episode: when {column} stays outside the champion's "
        f"holdout interval on {needed} consecutive scored days (the performance_within_holdout check).",
    )
    def performance_retrain(
        context: dg.SensorEvaluationContext, lake: DataLake, alerts: AlertResource
    ) -> dg.SensorResult | dg.SkipReason:
        days = lake.existing_partitions(keys.performance(spec))[-LOOKBACK_DAYS:]
        if not days:
            return dg.SkipReason(f"no {spec.name}/performance partitions yet")
        table = lake.read(keys.performance(spec), days)
        below = episode(spec, table)
        retrained_for = json.loads(context.cursor)["episode"] if context.cursor else None
        if not below:  # the newest measured day within the bound ends any episode: the next one retrains again
            return dg.SensorResult(skip_reason=f"newest measured {column} within the champion's holdout interval",
                                   cursor=json.dumps({"episode": None}))
        since = f"{below[0]}..{below[-1]}"
        if len(below) < needed:
            return dg.SkipReason(f"{column} outside the holdout interval on {len(below)} day(s) ({since}); "
                                 f"retraining after {needed}")
        if retrained_for == below[0]:
            return dg.SkipReason(f"retraining already requested for the degradation episode {since}")
        rows = table[table["day"].isin(below)].sort_values("day")
        values = {row.day: round(float(getattr(row, column)), 4) for row in rows.itertuples(index=False)}
        version, bound = str(rows[VERSION].iloc[-1]), float(rows[BOUND].iloc[-1])
        alerts.send(
            "performance_degraded",
            f"{spec.name}: champion v{version} below its holdout interval on {len(below)} days, retraining",
            f"{column} per day {values}; holdout bound {bound:.4f} (monitoring.consecutive_days {needed}).",
            severity="warning", dedup_key=f"{spec.name}-performance-{below[0]}",
            details={"use_case": spec.name, "metric": column, "champion_version": version, "bound": bound,
                     "days": values},
        )
        return dg.SensorResult(
            run_requests=[dg.RunRequest(
                run_key=f"performance-episode-{below[0]}",
                tags={"ml_platform/trigger": "performance", "ml_platform/performance_days": since},
            )],
            cursor=json.dumps({"episode": below[0]}),
        )

    return performance_retrain
