"""The Postgres event log with a kept connection: production (see the package docstring).

Its own module because importing dagster_postgres costs ~0.6 s, which the SQLite default
should not pay in every process that loads the instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """Postgres event log over one kept (pinged) connection per process instead of one per statement group."""

    def __init__(
        self, postgres_url: str, should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None, token_provider: Any = None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._engine = create_pg_engine(
            self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT",
            pool_size=1, max_overflow=4, pool_pre_ping=True, pool_recycle=3600,
        )

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()
