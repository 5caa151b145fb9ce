"""A fraud use case landing CSV files, as real event exports come: labels that may be blank, no id column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from demo.generators.fraud import generate_fraud_events
from demo.landing import land_days
from ml_platform.definitions import load_specs
from ml_platform.spec import UseCaseSpec

START = dt.date(2025, 1, 1)
DAYS = 40
UNKNOWN_SHARE = 0.2


def csv_fraud_spec(max_null_fraction: float) -> UseCaseSpec:
    """The shipped fraud spec, landing CSV files whose label may be blank up to `max_null_fraction`."""
    shipped = next(spec for spec in load_specs() if spec.name == "fraud").model_dump()
    columns = [
        {**c, "max_null_fraction": max_null_fraction} if c["name"] == "is_fraud" else c for c in shipped["columns"]
    ]
    return UseCaseSpec.model_validate(
        {
            **shipped,
            "name": "fraud_csv",
            "columns": columns,
            "source": {"kind": "files", "directory": "landing/fraud_csv", "format": "csv"},
        }
    )


def land_with_unknown_labels(data_dir: Path, share: float, seed: int = 3) -> dict[str, set[str]]:
    """CSV days whose label is blank on `share` of the rows; returns the unknown transaction ids per day."""
    rng = np.random.default_rng(seed)
    unknown: dict[str, set[str]] = {}
    days = []
    for day, events in generate_fraud_events(START, DAYS, 200, seed=seed):
        blank = rng.random(len(events)) < share
        events["is_fraud"] = events["is_fraud"].astype("Int64").mask(blank)
        unknown[day.isoformat()] = set(events.loc[blank, "transaction_id"])
        days.append((day, events))
    land_days(data_dir / "landing" / "fraud_csv", days, file_format="csv")
    return unknown
