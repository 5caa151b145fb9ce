"""A use case with decades of daily partitions and a few events a day (the load-time and whole-history
benchmarks, the 10,000-partition browser test): the `ml-platform new-use-case` scaffold from a given
start_date, and its day files written directly as CSV text (10,000 days in seconds)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml_platform.scaffold import write_scaffold

EVENT_TYPES = np.array(["view", "purchase", "complaint", "cancel"])
EVENT_WEIGHTS = np.array([0.6, 0.25, 0.1, 0.05])


def write_history_spec(directory: Path, name: str, start: dt.date) -> Path:
    """The scaffold's spec (CSV files under landing/<name>) with partitions from `start`."""
    path = write_scaffold(name, directory)
    text, found = re.subn(r'^start_date: "[0-9-]+"', f'start_date: "{start.isoformat()}"', path.read_text(), flags=re.M)
    assert found == 1, "the scaffold's start_date line moved"
    path.write_text(text)
    return path


def days_from(start: dt.date, count: int) -> list[dt.date]:
    return [start + dt.timedelta(days=offset) for offset in range(count)]


def land_history(
    landing: Path, days: Sequence[dt.date], events_per_day: int = 4, entities: int = 20, seed: int = 0
) -> int:
    """One CSV per day in the scaffold's columns: `events_per_day` events of `entities` entities at random
    times of the day; a cancel is the positive event. Returns the number of files written."""
    rng = np.random.default_rng(seed)
    landing.mkdir(parents=True, exist_ok=True)
    header = "event_id,entity_id,event_time,event_type,amount,is_positive\n"
    for day in days:
        seconds = np.sort(rng.integers(0, 86_400, events_per_day))
        kinds = rng.choice(EVENT_TYPES, size=events_per_day, p=EVENT_WEIGHTS)
        owners = rng.integers(0, entities, events_per_day)
        amounts = rng.gamma(2.0, 20.0, events_per_day).round(2)
        lines = [
            f"{day}-{i},{owner},{day}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z,{kind},"
            f"{amount if kind == 'purchase' else ''},{int(kind == 'cancel')}\n"
            for i, (second, kind, owner, amount) in enumerate(zip(seconds, kinds, owners, amounts, strict=True))
        ]
        (landing / f"{day}.csv").write_text(header + "".join(lines))
    return len(days)
