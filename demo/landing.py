"""Landing synthetic days as files, one per day, never overwriting what is already there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


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

