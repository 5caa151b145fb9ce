"""An irregular calendar: churn activity landed on business days only, read with `source.missing_days: empty`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from demo.generators.churn import write_landing_files
from ml_platform.definitions import load_specs
from ml_platform.spec import UseCaseSpec

NAME = "weekdays"
START = dt.date(2025, 1, 1)  # a Wednesday


def weekday_spec(missing_days: str = "empty") -> UseCaseSpec:
    """The shipped churn spec on business days, with windows of a week or two so the warm-up stays short."""
    churn = next(spec for spec in load_specs() if spec.name == "churn").model_dump()
    login = {"column": "event_type", "equals": "login"}
    return UseCaseSpec.model_validate(
        {
            **churn,
            "name": NAME,
            "source": {
                "kind": "files",
                "directory": f"landing/{NAME}",
                "format": "parquet",
                "missing_days": missing_days,
            },
            "features": [
                {"name": "logins_7d", "agg": "count", "where": login, "window_days": 7},
                {
                    "name": "sessions_7d",
                    "agg": "count",
                    "where": {"column": "event_type", "equals": "session"},
                    "window_days": 7,
                },
                {"name": "session_minutes_7d", "agg": "sum", "column": "session_minutes", "window_days": 7},
                {"name": "days_since_login", "agg": "days_since_last", "where": login, "window_days": 14},
            ],
            "training": {**churn["training"], "window_days": 20, "holdout_days": 5},
            "gates": {**churn["gates"], "min_metrics": {"accuracy": 0.5}},
        }
    )


def landing(data_dir: Path) -> Path:
    return data_dir / "landing" / NAME


def is_business_day(day: str) -> bool:
    return dt.date.fromisoformat(day).weekday() < 5


def land_business_days(data_dir: Path, days: int, events_per_day: int, seed: int = 5) -> list[str]:
    """Churn activity for `days` calendar days from START, landed on business days only; every calendar day."""
    written = write_landing_files(landing(data_dir), START, days, events_per_day, seed=seed)
    for path in written:
        if not is_business_day(path.name.split(".")[0]):
            path.unlink()
    return [(START + dt.timedelta(days=offset)).isoformat() for offset in range(days)]
