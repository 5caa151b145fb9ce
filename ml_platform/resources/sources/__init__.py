"""Where raw events come from: one module per source kind, all behind the `Source` protocol.

`KINDS` maps each spec source block to the class that reads it; a new kind is
a new module here, its entry below, and its block in `ml_platform.spec`.
Each use case has its own `EventSource` resource (`source_resource_key`), so a table source's URL
is one `dg.EnvVar` of that use case alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform.resources.sources.base import Source, SourceError, SourceSettings
from ml_platform.resources.sources.files import DAY_FILE, FileSource, content_digest, file_signature, landing_dir
from ml_platform.resources.sources.postgres import PostgresSource, dispose_engines
from ml_platform.spec import FileSourceSpec, PostgresSourceSpec, UseCaseSpec

KINDS: dict[type, Callable[[UseCaseSpec, Any, SourceSettings], Source]] = {
    FileSourceSpec: FileSource.open,
    PostgresSourceSpec: PostgresSource.open,
}

__all__ = [
    "DAY_FILE",
    "KINDS",
    "EventSource",
    "Source",
    "SourceError",
    "content_digest",
    "dispose_engines",
    "file_signature",
    "source_resource",
    "source_resource_key",
]


class EventSource(dg.ConfigurableResource[Any]):
    """Opens the source of a use case's raw events.

    A Postgres source's URL (with its password) is `postgres_dsn`, given as `dg.EnvVar(source.dsn_env)`
    (see `source_resource`): Dagster resolves it when a run or sensor tick starts and shows only the
    variable's name. Never give it a literal URL with a password outside tests."""

    data_dir: str
    postgres_dsn: str | None = None

    def source_for(self, spec: UseCaseSpec) -> Source:
        settings = SourceSettings(data_dir=Path(self.data_dir), postgres_dsn=self.postgres_dsn)
        return KINDS[type(spec.source)](spec, spec.source, settings)

    def read_day(self, spec: UseCaseSpec, day: str) -> pd.DataFrame:
        """The ingest step's read: the use case's source, opened for one day."""
        return self.source_for(spec).read_day(day)

    def read_batches(self, spec: UseCaseSpec, day: str) -> Iterator[pd.DataFrame]:
        """The ingest step's read in batches (a file source's row groups; other kinds read the day as one)."""
        source = self.source_for(spec)
        if isinstance(source, FileSource):
            return source.read_batches(day)
        return iter([source.read_day(day)])

    def landing_dir(self, source: FileSourceSpec) -> Path:
        """Where a file source's days land (the demo and tests write there)."""
        return landing_dir(Path(self.data_dir), source)


def source_resource_key(spec: UseCaseSpec) -> str:
    """The resource key of a use case's source: one per use case, so one use case's unset variable
    cannot fail another's runs."""
    return f"{spec.name}_source"


def source_resource(spec: UseCaseSpec, data_dir: Path) -> EventSource:
    """The use case's source resource; a table source's URL by reference to its spec's `dsn_env`."""
    if isinstance(spec.source, PostgresSourceSpec):
        return EventSource(data_dir=str(data_dir), postgres_dsn=dg.EnvVar(spec.source.dsn_env))
    return EventSource(data_dir=str(data_dir))
