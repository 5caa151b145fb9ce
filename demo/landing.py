"""Landing synthetic days as files, one per day, never overwriting what is already there."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd


def land_days(
    directory: str | Path, days: Iterable[tuple[dt.date, pd.DataFrame]], file_format: str = "parquet"
) -> list[Path]:
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


def at_most(rows: pd.DataFrame, count: int | None, seed: int = 0) -> pd.DataFrame:
    """`rows`, or a seeded sample of `count` of them in their original order (trimmed copies of real data)."""
    if count is None or len(rows) <= count:
        return rows
    return rows.sample(count, random_state=seed).sort_index()


def run_lander(
    description: str, land: Callable[[Path, int, int | None], list[Path]], days_help: str, unit: str
) -> None:
    """The command line of an example's `land.py`: DIRECTORY --days N --per-day M."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="where the day files go (inside $ML_PLATFORM_DATA_DIR)")
    parser.add_argument("--days", type=int, default=60, help=days_help)
    parser.add_argument("--per-day", type=int, default=None, help=f"sample at most this many {unit} a day")
    args = parser.parse_args()
    if args.days < 1 or (args.per_day is not None and args.per_day < 1):
        parser.error("--days and --per-day must be positive")
    paths = land(args.directory, args.days, args.per_day)
    if not paths:
        parser.error(f"nothing landed in {args.directory}: the days are there already (existing files are kept)")
    print(f"landed {len(paths)} day files in {args.directory} ({paths[0].stem}..{paths[-1].stem})")
