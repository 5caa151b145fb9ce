"""Synthetic daily price series for the forecasting use case.

Each series has a level that drifts with a trend, a weekly seasonal pattern,
noise, and regime changes (the trend and volatility switch at random days).
Dataset versions mirror the seed's versioned datasets: `v2` has more frequent
and stronger regime changes than `v1` from the same seed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

REGIME_CHANGE_PROBABILITY = {"v1": 0.01, "v2": 0.03}


def generate_price_events(
    start: dt.date, days: int, events_per_day: int = 30, seed: int = 0, version: str = "v1"
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """One closing price per series per day; `events_per_day` is the number of series."""
    if version not in REGIME_CHANGE_PROBABILITY:
        raise ValueError(f"unknown dataset version '{version}', expected one of {sorted(REGIME_CHANGE_PROBABILITY)}")
    rng = np.random.default_rng(seed)
    series = max(1, events_per_day)
    level = rng.lognormal(np.log(100), 0.5, size=series)
    trend = rng.normal(0.0005, 0.002, size=series)
    volatility = rng.uniform(0.004, 0.01, size=series)
    amplitude = rng.uniform(0.02, 0.05, size=series)
    phase = rng.integers(0, 7, size=series)
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        switching = rng.random(series) < REGIME_CHANGE_PROBABILITY[version]
        trend = np.where(switching, rng.normal(0.0, 0.004, size=series), trend)
        volatility = np.where(switching, rng.uniform(0.004, 0.015, size=series), volatility)
        level = level * (1 + trend)
        seasonal = 1 + amplitude * np.sin(2 * np.pi * (offset + phase) / 7)
        price = level * seasonal * (1 + rng.normal(0, volatility))
        stamp = day.strftime("%Y%m%d")
        yield (
            day,
            pd.DataFrame(
                {
                    "observation_id": [f"p{stamp}-{i:05d}" for i in range(series)],
                    "series_id": np.arange(series, dtype=np.int64) + 1,
                    "event_time": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=21),
                    "price": price.round(4),
                    "dataset_version": version,
                }
            ),
        )
