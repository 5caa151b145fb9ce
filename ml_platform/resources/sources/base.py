"""What the platform asks of a source of raw events, whatever its kind.

A source kind is one module with a class satisfying `Source` and an entry in
`ml_platform.resources.sources.KINDS`; the sensor and the ingest step only
ever talk to this protocol. A source is read-only to the platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd


class SourceError(Exception):
    """A day's source data is missing or cannot be read; the message names file (or table) and day."""


class NoDataForDay(SourceError):
    """The source definitely holds nothing for the day (no such file): with `source.missing_days: empty` a day
    without events. Only a definite absence raises it; an entry that exists but cannot be read, or a source
    that cannot be reached, raises plain `SourceError` whatever the setting (absent is not unavailable)."""


@dataclass(frozen=True)
class SourceSettings:
    """What the `source` resource adds to a spec's source block."""

    data_dir: Path  # relative landing directories live under it
    postgres_dsn: str | None = None  # a table source's URL, resolved from dg.EnvVar(source.dsn_env)


class Source(Protocol):
    """One use case's raw events, one day at a time."""

    def versions(self) -> dict[str, str]:
        """Days with data, each with a cheap version that changes whenever the day's data may have."""
        ...

    def digest(self, day: str, version: str) -> str:
        """The identity of the day's content: the landed-data sensor reruns a day only when it changes,
        and computes it only when `version` did."""
        ...

    def rejected(self) -> dict[str, str]:
        """Entries that look landed but can never be a day's data, each with the reason."""
        ...

    def entry_name(self, day: str) -> str:
        """How the day's data is named to a person (a file name, a table's rows)."""
        ...

    def changed_at(self, day: str) -> float | None:
        """When the day's data last changed (POSIX seconds); None when the source cannot tell."""
        ...

    def read_day(self, day: str) -> pd.DataFrame:
        """The day's events; `NoDataForDay` when the source definitely has no entry for the day, SourceError
        naming the entry and day when they cannot be read."""
        ...
