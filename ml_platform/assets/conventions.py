"""What Dagster users expect on every asset: a code version that says when its spec changed, and a
freshness policy on the daily assets so a late day shows in the asset's health.

Code versions are a short hash of the spec fields an asset's own computation reads and of the
platform's version: changing one marks exactly the assets it defines as "code version changed" in the
UI (what is downstream follows through Dagster's data versions once they rematerialize). The hash is
of sorted JSON, so it is the same in every process and on every load.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
from typing import Any, TypedDict

import dagster as dg

from ml_platform.spec import UseCaseSpec

PLATFORM_VERSION = importlib.metadata.version("ml_platform")

# The spec fields (dotted paths) each asset's own computation reads, by stage; the use case's name is in the key.
DEFINED_BY: dict[str, tuple[str, ...]] = {
    "raw_events": (
        "source",
        "columns",
        "timestamp_column",
        "event_id_column",
        "unique_columns",
        "label",
        "gates.min_rows_per_day",
        "gates.severity",
    ),
    "features": (
        "grain",
        "entity_column",
        "columns",
        "timestamp_column",
        "event_id_column",
        "unique_columns",
        "label",
        "features",
    ),
    "predictions": ("grain", "entity_column", "event_id_column", "columns", "label", "features"),
    "drift": ("features", "drift"),
    "report": ("columns", "label", "features"),
    "performance": ("label", "gates.compare_metric", "monitoring.performance_source", "monitoring.consecutive_days"),
    "training_set": (
        "label",
        "features",
        "training.window_days",
        "training.holdout_days",
        "training.max_rows",
        "training.seed",
    ),
    "model": (
        "label",
        "features",
        "model",
        "training",
        "gates.min_metrics",
        "gates.max_metrics",
        "gates.compare_metric",
        "gates.significance_level",
        "gates.bootstrap_resamples",
    ),
    "champion": ("gates.compare_metric",),
    "shadow_predictions": (
        "grain",
        "entity_column",
        "event_id_column",
        "columns",
        "label",
        "features",
        "monitoring.shadow_versions",
    ),
    "shadow_comparison": (
        "label",
        "gates.compare_metric",
        "gates.significance_level",
        "gates.bootstrap_resamples",
        "training.seed",
    ),
}


def code_version(spec: UseCaseSpec, stage: str) -> str:
    """The stage's spec fields and the platform version, hashed: 16 hex digits."""
    fields = spec.model_dump(mode="json", include=_include(DEFINED_BY[stage]))
    text = json.dumps({"platform": PLATFORM_VERSION, "spec": fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _include(paths: tuple[str, ...]) -> dict[str, Any]:
    """Dotted paths as pydantic's nested `include` ({'gates': {'severity': True}, 'source': True})."""
    include: dict[str, Any] = {}
    for path in paths:
        top, _, rest = path.partition(".")
        if rest:
            include.setdefault(top, {})[rest] = True
        else:
            include[top] = True
    return include


class DailyConventions(TypedDict):
    """The asset arguments every daily asset shares, typed so that `@dg.asset(**...)` stays typed."""

    code_version: str
    freshness_policy: dg.FreshnessPolicy


def daily_conventions(spec: UseCaseSpec, stage: str) -> DailyConventions:
    """A daily asset's spec arguments: its code version and the use case's freshness policy."""
    return {"code_version": code_version(spec, stage), "freshness_policy": daily_freshness(spec)}


def daily_freshness(spec: UseCaseSpec) -> dg.FreshnessPolicy:
    """Fresh when materialized between the daily schedule (`schedule.daily_at`) and `schedule.late_after_minutes`
    later; from that deadline on, a day not yet materialized is late (FAIL) until it is."""
    schedule = spec.schedule
    return _cron_freshness(schedule.daily_at, schedule.late_after_minutes, schedule.timezone)


@functools.cache  # Dagster validates a cron policy by sampling a thousand ticks (~6 ms): once per schedule
def _cron_freshness(daily_at: str, late_after_minutes: int, timezone: str) -> dg.FreshnessPolicy:
    late = dt.timedelta(minutes=late_after_minutes)
    deadline = dt.datetime.combine(dt.date.min, dt.time.fromisoformat(daily_at)) + late
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"{deadline.minute} {deadline.hour} * * *", lower_bound_delta=late, timezone=timezone
    )
