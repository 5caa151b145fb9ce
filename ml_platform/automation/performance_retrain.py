"""The performance sensor: the champion's gate metric below its holdout interval on `monitoring.consecutive_days`
consecutive scored days retrains, once per episode (a day within the bound ends it), and the alert carries the
numbers. The days and the rule are those of the `performance_within_holdout` check
(`ml_platform/monitoring/degradation.py`), read from the performance table in the lake as drift's sensor reads drift.
"""

from __future__ import annotations

import dagster as dg

from ml_platform.assets import keys
from ml_platform.automation.episodes import retrain_once_per_episode
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

        def alert() -> None:
            rows = table[table["day"].isin(below)].sort_values("day")
            values = {row.day: round(float(getattr(row, column)), 4) for row in rows.itertuples(index=False)}
            version, bound = str(rows[VERSION].iloc[-1]), float(rows[BOUND].iloc[-1])
            alerts.send(
                "performance_degraded",
                f"{spec.name}: champion v{version} below its holdout interval on {len(below)} days, retraining",
                f"{column} per day {values}; holdout bound {bound:.4f} (monitoring.consecutive_days {needed}).",
                severity="warning",
                dedup_key=f"{spec.name}-performance-{below[0]}",
                details={
                    "use_case": spec.name,
                    "metric": column,
                    "champion_version": version,
                    "bound": bound,
                    "days": values,
                },
            )

        return retrain_once_per_episode(
            context, "performance", below, needed, f"{column} outside the champion's holdout interval", on_retrain=alert
        )

    return performance_retrain
