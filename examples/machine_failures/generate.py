"""Daily telemetry CSV files for the machine_failures tutorial.

    python examples/machine_failures/generate.py DATA_DIR [--days 60] [--machines 80]

Each machine reports hourly; in the days before a failure its temperature and
vibration drift upwards, then it fails, is repaired (a maintenance event) and
starts healthy again.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd


def generate_telemetry(
    start: dt.date, days: int, machines: int = 80, seed: int = 0
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    base_temperature = rng.normal(60, 5, size=machines)
    base_vibration = rng.uniform(2, 4, size=machines)
    failure_day = rng.integers(5, 60, size=machines).astype(float)
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        hours = np.arange(24)
        machine = np.repeat(np.arange(machines), len(hours))
        hour = np.tile(hours, machines)
        to_failure = failure_day[machine] - offset
        stress = np.clip(1 - to_failure / 8, 0, 1)  # rises over the 8 days before a failure
        temperature = base_temperature[machine] + 25 * stress + rng.normal(0, 3, size=len(machine))
        vibration = base_vibration[machine] * (1 + 2.5 * stress) + rng.normal(0, 0.5, size=len(machine))
        frame = pd.DataFrame(
            {
                "machine_id": machine,
                "hour": hour,
                "kind": "reading",
                "temperature_c": temperature.round(2),
                "vibration_mm_s": np.abs(vibration).round(3),
                "failed": 0,
            }
        )
        failing = np.flatnonzero(failure_day == offset)
        events = pd.DataFrame(
            {
                "machine_id": np.concatenate([failing, failing]),
                "hour": np.concatenate([np.full(len(failing), 12), np.full(len(failing), 18)]),
                "kind": ["failure"] * len(failing) + ["maintenance"] * len(failing),
                "temperature_c": np.nan,
                "vibration_mm_s": np.nan,
                "failed": np.array([1] * len(failing) + [0] * len(failing), dtype=np.int64),
            }
        )
        failure_day[failing] = offset + rng.integers(15, 70, size=len(failing))
        frame = pd.concat([frame, events], ignore_index=True).sort_values(["hour", "machine_id"], kind="stable")
        frame.insert(
            0,
            "event_time",
            pd.Timestamp(day, tz="UTC")
            + pd.to_timedelta(frame.pop("hour") * 3600 + rng.integers(0, 3600, size=len(frame)), unit="s"),
        )
        frame.insert(0, "reading_id", [f"m{day:%Y%m%d}-{i:06d}" for i in range(len(frame))])
        yield day, frame.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--machines", type=int, default=80)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 1, 1))
    args = parser.parse_args()
    directory = args.data_dir / "landing" / "machine_failures"
    directory.mkdir(parents=True, exist_ok=True)
    for day, frame in generate_telemetry(args.start, args.days, args.machines):
        frame.to_csv(directory / f"{day.isoformat()}.csv", index=False)
    print(f"wrote {args.days} daily CSV files to {directory}")


if __name__ == "__main__":
    main()
