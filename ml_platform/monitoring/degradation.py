"""When is the champion worse than its holdout said? Pure rules over the performance table's rows.

A day is *below* when its gate metric (realized or estimated, `monitoring.performance_source`) is
worse than the lower end of the champion's holdout bootstrap interval (the upper end for an error
such as MAE). An *episode* is the run of below days, in day order among the days that have the
metric and were scored by the newest day's champion, ending on the newest such day; it degrades the
champion once it holds `monitoring.consecutive_days` days. A day whose metric is within the bound
ends it.
"""

from __future__ import annotations

import math

import pandas as pd

from ml_platform.checks.rules import CheckOutcome, failed, passed
from ml_platform.monitoring.realized import lower_is_better
from ml_platform.spec import UseCaseSpec

PERFORMANCE_CHECK = "performance_within_holdout"
BOUND, VERSION = "holdout_bound", "champion_version"


def gate_column(spec: UseCaseSpec) -> str:
    """The performance table's column the gate reads: `realized_<metric>` or `estimated_<metric>`."""
    return f"{spec.monitoring.performance_source}_{spec.gates.compare_metric}"


def is_below(spec: UseCaseSpec, value: float, bound: float) -> bool:
    return value > bound if lower_is_better(spec.gates.compare_metric) else value < bound


def episode(spec: UseCaseSpec, table: pd.DataFrame) -> list[str]:
    """The days of the current episode (see the module docstring), oldest first; [] when the newest measured day
    is within its bound. `table` holds one row per day with `day`, `champion_version`, `holdout_bound` and the
    gate column (missing or NaN where not measured)."""
    column = gate_column(spec)
    if table.empty or column not in table or BOUND not in table:
        return []
    measured = table[table[column].notna() & table[BOUND].notna()].sort_values("day")
    if measured.empty:
        return []
    newest_version = measured[VERSION].iloc[-1]
    days: list[str] = []
    for row in reversed(list(measured[measured[VERSION] == newest_version].itertuples(index=False))):
        if not is_below(spec, float(getattr(row, column)), float(getattr(row, BOUND))):
            break
        days.insert(0, row.day)
    return days


def day_outcome(spec: UseCaseSpec, day: str, table: pd.DataFrame) -> CheckOutcome:
    """Day D's check: failed when the episode ending on D holds `consecutive_days` days. `table` holds D and
    the days before it."""
    column, needed = gate_column(spec), spec.monitoring.consecutive_days
    row = table[table["day"] == day]
    value = float(row[column].iloc[0]) if column in row and len(row) and pd.notna(row[column].iloc[0]) else math.nan
    bound = float(row[BOUND].iloc[0]) if BOUND in row and len(row) and pd.notna(row[BOUND].iloc[0]) else math.nan
    if math.isnan(bound):
        return passed(PERFORMANCE_CHECK, day, f"the champion that scored {day} has no recorded holdout interval of "
                      f"{spec.gates.compare_metric}; retrain to record one", metric=column)
    if math.isnan(value):
        return passed(PERFORMANCE_CHECK, day, f"{column} not known yet (labels not matured)", metric=column, bound=bound)
    days = episode(spec, table[table["day"] <= day])
    numbers = {"metric": column, "value": value, "bound": bound, "below_days": len(days)}
    side = "above the upper" if lower_is_better(spec.gates.compare_metric) else "below the lower"
    if len(days) >= needed:
        return failed(PERFORMANCE_CHECK, day, f"{column} {value:.4f} {side} end {bound:.4f} of the champion's holdout "
                      f"interval on {len(days)} consecutive day(s) {days[0]}..{days[-1]} (limit {needed})", **numbers)
    if days:
        return passed(PERFORMANCE_CHECK, day, f"{column} {value:.4f} {side} end {bound:.4f} on {len(days)} day(s), "
                      f"fewer than monitoring.consecutive_days {needed}", **numbers)
    return passed(PERFORMANCE_CHECK, day, f"{column} {value:.4f} within the champion's holdout bound {bound:.4f}",
                  **numbers)
