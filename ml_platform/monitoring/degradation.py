"""When is the champion worse than its holdout said? Pure rules over the performance table's rows.

A day is *below* when its gate metric (realized or estimated, `monitoring.performance_source`) is
worse than the lower end of the champion's holdout bootstrap interval (the upper end for an error
such as MAE). A realized day counts as below only when its whole own bootstrap interval is: one day
holds far fewer rows (and positives) than the holdout, and its metric alone swings across the bound
by chance. An *episode* is the run of below days, in day order among the days that have the metric
and were scored by the newest day's champion, ending on the newest such day; it degrades the champion
once it holds `monitoring.consecutive_days` days. A day within the bound ends it; warm-up days (feature
windows reaching before the first raw day, never trained or held out on) are not gated.
"""

from __future__ import annotations

import math

import pandas as pd

from ml_platform.checks.rules import CheckOutcome, failed, passed
from ml_platform.monitoring.realized import lower_is_better
from ml_platform.spec import UseCaseSpec

PERFORMANCE_CHECK = "performance_within_holdout"
BOUND, VERSION, WARM_UP = "holdout_bound", "champion_version", "warm_up"


def gate_column(spec: UseCaseSpec) -> str:
    """The performance table's column the gate reports: `realized_<metric>` or `estimated_<metric>`."""
    return f"{spec.monitoring.performance_source}_{spec.gates.compare_metric}"


def evidence_column(spec: UseCaseSpec) -> str:
    """The column held against the bound: a realized day's interval end nearest the bound, or the estimate."""
    if spec.monitoring.performance_source == "estimated":
        return gate_column(spec)
    return f"{gate_column(spec)}_ci_{'low' if lower_is_better(spec.gates.compare_metric) else 'high'}"


def is_below(spec: UseCaseSpec, value: float, bound: float) -> bool:
    return value > bound if lower_is_better(spec.gates.compare_metric) else value < bound


def _gated(spec: UseCaseSpec, table: pd.DataFrame) -> pd.DataFrame:
    """The rows with evidence and a bound, warm-up days left out, in day order."""
    evidence = evidence_column(spec)
    if table.empty or evidence not in table or BOUND not in table:
        return table.iloc[0:0]
    warm = table[WARM_UP].fillna(False).astype(bool) if WARM_UP in table else False
    return table[table[evidence].notna() & table[BOUND].notna() & ~warm].sort_values("day")


def episode(spec: UseCaseSpec, table: pd.DataFrame) -> list[str]:
    """The days of the current episode (see the module docstring), oldest first; [] when the newest measured day
    is within its bound. `table` holds one row per day with `day`, `champion_version`, `holdout_bound` and the
    gate column (missing or NaN where not measured)."""
    measured, evidence = _gated(spec, table), evidence_column(spec)
    if measured.empty:
        return []
    newest = measured[measured[VERSION] == measured[VERSION].iloc[-1]]
    days: list[str] = []
    for day, value, bound in reversed(list(zip(newest["day"], newest[evidence], newest[BOUND], strict=True))):
        if not is_below(spec, float(value), float(bound)):
            break
        days.insert(0, day)
    return days


def day_outcome(spec: UseCaseSpec, day: str, table: pd.DataFrame) -> CheckOutcome:
    """Day D's check: failed when the episode ending on D holds `consecutive_days` days. `table` holds D and
    the days before it."""
    column, evidence, needed = gate_column(spec), evidence_column(spec), spec.monitoring.consecutive_days
    row = table[table["day"] == day]

    def number(name: str) -> float:
        return float(row[name].iloc[0]) if name in row and len(row) and pd.notna(row[name].iloc[0]) else math.nan

    value, bound, seen = number(column), number(BOUND), number(evidence)
    if WARM_UP in row and len(row) and bool(row[WARM_UP].iloc[0]):
        return passed(
            PERFORMANCE_CHECK,
            day,
            "warm-up day (its feature windows reach before the first raw day): not held against the holdout",
            metric=column,
        )
    if math.isnan(bound):
        return passed(
            PERFORMANCE_CHECK,
            day,
            f"the champion that scored {day} has no recorded holdout interval of "
            f"{spec.gates.compare_metric}; retrain to record one",
            metric=column,
        )
    if math.isnan(seen):
        return passed(
            PERFORMANCE_CHECK, day, f"{column} not known yet (labels not matured)", metric=column, bound=bound
        )
    days = episode(spec, table[table["day"] <= day])
    numbers = {
        "metric": column,
        "value": value,
        "evidence": evidence,
        "evidence_value": seen,
        "bound": bound,
        "below_days": len(days),
    }
    side = "above the upper" if lower_is_better(spec.gates.compare_metric) else "below the lower"
    shown = f"{column} {value:.4f}" + (f" ({evidence} {seen:.4f})" if evidence != column else "")
    if len(days) >= needed:
        return failed(
            PERFORMANCE_CHECK,
            day,
            f"{shown} {side} end {bound:.4f} of the champion's holdout "
            f"interval on {len(days)} consecutive day(s) {days[0]}..{days[-1]} (limit {needed})",
            **numbers,
        )
    if days:
        return passed(
            PERFORMANCE_CHECK,
            day,
            f"{shown} {side} end {bound:.4f} on {len(days)} day(s), fewer than monitoring.consecutive_days {needed}",
            **numbers,
        )
    return passed(PERFORMANCE_CHECK, day, f"{shown} within the champion's holdout bound {bound:.4f}", **numbers)
