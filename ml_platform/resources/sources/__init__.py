"""Where raw events come from: one module per source kind, all behind the `Source` protocol.

`KINDS` maps each spec source block to the class that reads it; a new kind is
a new module here, its entry below, and its block in `ml_platform.spec`.
One `EventSource` resource serves every use case and opens the spec's source.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "DAY_FILE", "KINDS", "EventSource", "Source", "SourceError", "content_digest", "dispose_engines", "file_signature",
]


class EventSource(dg.ConfigurableResource):
    """Opens the source of a use case's raw events.

    A Postgres source's URL (with its password) is read from the environment variable its spec names
    (`source.dsn_env`, default ML_PLATFORM_SOURCE_DSN) when the table is used, so it never becomes a
    resource value that the UI shows. `postgres_dsn` is a fallback for code that builds the resource
    itself; give it `dg.EnvVar(...)`, never a literal URL with a password."""

    data_dir: str
    postgres_dsn: str | None = None

    def source_for(self, spec: UseCaseSpec) -> Source:
        settings = SourceSettings(data_dir=Path(self.data_dir), postgres_dsn=self.postgres_dsn)
        return KINDS[type(spec.source)](spec, spec.source, settings)

    def read_day(self, spec: UseCaseSpec, day: str) -> pd.DataFrame:
        """The ingest step's read: the use case's source, opened for one day."""
        return self.source_for(spec).read_day(day)

    def landing_dir(self, source: FileSourceSpec) -> Path:
        """Where a file source's days land (the demo and tests write there)."""
        return landing_dir(Path(self.data_dir), source)
