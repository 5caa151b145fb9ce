"""Landing synthetic days as files, one per day, never overwriting what is already there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd

Generator = Callable[..., Iterator[tuple[dt.date, pd.DataFrame]]]


def land_days(directory: str | Path, days: Iterable[tuple[dt.date, pd.DataFrame]], file_format: str = "parquet") -> list[Path]:
    """Write each (day, events) as `<directory>/<day>.<format>`; existing files are kept."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for day, events in days:
        path = directory / f"{day.isoformat()}.{file_format}"
        if path.exists():
            continue
        temporary = directory / f".{path.name}.tmp"  # hidden: the landed-data sensor skips it while it is written
        if file_format == "csv":
            events.to_csv(temporary, index=False)
        else:
            events.to_parquet(temporary, index=False)
        temporary.rename(path)
        written.append(path)
    return written


def generators() -> dict[str, Generator]:
    """Synthetic data of the shipped use cases, by use-case name."""
    from ml_platform.use_cases.churn_data import generate_churn_events
    from ml_platform.use_cases.fraud_data import generate_fraud_events
    from ml_platform.use_cases.prices_data import generate_price_events

    return {"churn": generate_churn_events, "fraud": generate_fraud_events, "prices": generate_price_events}
