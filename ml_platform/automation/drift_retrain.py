"""The drift sensor: PSI above the spec's limit on `consecutive_days` consecutive days retrains,
once per drift episode (a calm newest day ends the episode)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import dagster as dg

from ml_platform.assets import keys
from ml_platform.automation.episodes import retrain_once_per_episode
from ml_platform.automation.runs import default_status
from ml_platform.dagster_internals import UnresolvedAssetJobDefinition
from ml_platform.io.parquet_lake import DataLake
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec

DRIFT_LOOKBACK_DAYS = 60  # an episode longer than this is still one episode: it started before the window


def build_drift_retrain_sensor(
    spec: UseCaseSpec, settings: Settings, training_job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    threshold = spec.drift.psi_threshold

    @dg.sensor(
        name=f"{spec.name}_drift_retrain_sensor",
        job=training_job,
        minimum_interval_seconds=settings.sensor_interval(60),
        default_status=default_status(settings),
        description=f"Retrain {spec.name} once per drift episode: when the PSI of a feature or of the scores stays "
        f"above {threshold} on {spec.drift.consecutive_days} consecutive days.",
    )
    def drift_retrain(context: dg.SensorEvaluationContext, lake: DataLake) -> dg.SensorResult | dg.SkipReason:
        worst_psi, unmeasured = _recent_worst_psi(spec, lake)
        if not worst_psi:
            return dg.SkipReason(f"no {spec.name}/drift partitions yet")
        episode = drift_episode(worst_psi, threshold, unmeasured)
        return retrain_once_per_episode(
            context, "drift", episode, spec.drift.consecutive_days, f"PSI above {threshold}"
        )

    return drift_retrain


def drift_episode(worst_psi: dict[str, float], threshold: float, unmeasured: Collection[str] = ()) -> list[str]:
    """The run of consecutive days, ending on the newest day, whose PSI exceeds the threshold. Days stored
    without a measurement between them (a day without events on an irregular calendar) do not break the run;
    a day whose drift was never computed does."""
    episode: list[str] = []
    skipped = set(unmeasured)
    for day in sorted(worst_psi, reverse=True):
        if episode and not _only_unmeasured_between(day, episode[0], skipped):
            break
        if worst_psi[day] <= threshold:
            break
        episode.insert(0, day)
    return episode


def _only_unmeasured_between(earlier: str, later: str, unmeasured: set[str]) -> bool:
    first, last = dt.date.fromisoformat(earlier), dt.date.fromisoformat(later)
    return all((first + dt.timedelta(days=n)).isoformat() in unmeasured for n in range(1, (last - first).days))


def _recent_worst_psi(spec: UseCaseSpec, lake: DataLake) -> tuple[dict[str, float], set[str]]:
    """Largest PSI (any feature or the scores) of each of the newest drift days that were measured against
    the champion of the newest day, and the newest days stored without a measurement (no events, too few
    rows): drift measured against a champion since replaced says nothing about the current one, so right
    after a promotion only the days rescored with it count."""
    days = lake.existing_partitions(keys.drift(spec))[-DRIFT_LOOKBACK_DAYS:]
    if not days:
        return {}, set()
    drift = lake.read(keys.drift(spec), days, columns=["day", "psi", "champion_version"])
    if drift.empty:
        return {}, set(days)
    newest = drift.loc[drift["day"] == drift["day"].max(), "champion_version"].iloc[0]
    worst = drift[drift["champion_version"] == newest].groupby("day")["psi"].max().to_dict()
    return worst, set(days) - set(drift["day"])
