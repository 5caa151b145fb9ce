"""Every non-public Dagster name the platform uses, in one place, each with why the public API does not do.

A Dagster upgrade can rename or change any of these without notice. Nothing else in the repository
imports from `dagster._...` (or from a non-public module of a Dagster library);
ml_platform_tests/unit/test_dagster_internals.py enforces that, fails while `dagster.__version__` differs
from `CHECKED_AGAINST`, and checks that every name below still resolves and that every Dagster method the
platform's storages and run launcher override or call keeps the signature it was checked against.

Names resolve at first use (`__getattr__`): the code location imports this module at load time, and
several of the modules behind these names (the event-log storages, the run-worker arguments) are not
otherwise loaded there (~0.3 s CPU together).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

CHECKED_AGAINST = "1.13.27"  # dagster's version; the libraries below are pinned to it


@dataclass(frozen=True)
class Private:
    module: str
    why: str  # why the public API does not do
    prefer: str | None = None  # the public spelling where one exists for some uses


SYMBOLS: dict[str, Private] = {
    # Assets and checks
    "UnresolvedAssetJobDefinition": Private(
        "dagster._core.definitions.unresolved_asset_job_definition",
        "the type `dg.define_asset_job` returns; dagster exports the function, not the class (annotations only)",
    ),
    "UnresolvedPartitionedAssetScheduleDefinition": Private(
        "dagster._core.definitions.partitions.partitioned_schedule",
        "what `dg.build_schedule_from_partitioned_job` returns for an asset job (resolved by Definitions; "
        "annotations only)",
    ),
    "AssetCheckEvaluationTargetMaterializationData": Private(
        "dagster._core.definitions.asset_checks.asset_check_evaluation",
        "the materialization a range gate's per-day evaluation judges; `dg.AssetCheckEvaluation` takes one but "
        "dagster exports no constructor for it",
    ),
    "AssetCheckExecutionRecordStatus": Private(
        "dagster._core.storage.asset_check_execution_record",
        "the status filter and field of a check's per-partition history (event_log_storage.get_asset_check_*), "
        "which has no public reader",
    ),
    # Event payloads, to store events as a run worker does (tests, benchmarks)
    "StepMaterializationData": Private(
        "dagster._core.events", "the payload of an ASSET_MATERIALIZATION `dg.DagsterEvent`; not exported"
    ),
    "AssetMaterializationPlannedData": Private(
        "dagster._core.events", "the payload of an ASSET_MATERIALIZATION_PLANNED `dg.DagsterEvent`; not exported"
    ),
    "AssetCheckEvaluationPlanned": Private(
        "dagster._core.definitions.asset_checks.asset_check_evaluation",
        "the payload of an ASSET_CHECK_EVALUATION_PLANNED `dg.DagsterEvent`; not exported",
    ),
    # Event-log storages (ml_platform/storage): subclasses of Dagster's own
    "ConfigurableClass": Private(
        "dagster._serdes", "the contract of a class named in dagster.yaml (module/class/config); not exported"
    ),
    "ConfigurableClassData": Private(
        "dagster._serdes", "what a dagster.yaml class receives as `inst_data`; not exported"
    ),
    "SqliteEventLogStorage": Private(
        "dagster._core.storage.event_log",
        "the base of the platform's SQLite event log; dagster exports no event-log class",
    ),
    "INDEX_SHARD_NAME": Private(
        "dagster._core.storage.event_log.sqlite.sqlite_event_log",
        "the name of the SQLite event log's cross-run shard, whose engine is never evicted",
    ),
    "SQLITE_BUSY_TIMEOUT_SECONDS": Private(
        "dagster._core.storage.sqlite", "the busy timeout Dagster gives every SQLite connection, kept the same"
    ),
    "SqlPollingEventWatcher": Private(
        "dagster._core.storage.event_log.polling_event_watcher",
        "Dagster's polling run-log watcher (its Postgres one), for SQLite shards whose commits stay in the WAL",
    ),
    "EventHandlerFn": Private(
        "dagster._core.event_api",
        "the type of a run-log watcher's callback (annotations only)",
        prefer="Callable[[dg.EventLogEntry, str], None]",
    ),
    "ASSET_EVENTS": Private(
        "dagster._core.events", "the event types Dagster indexes per asset; copying the set would drift silently"
    ),
    "ASSET_CHECK_EVENTS": Private(
        "dagster._core.events",
        "the event types Dagster writes check-execution rows for; copying the set would drift silently",
    ),
    "SqlEventLogStorageTable": Private(
        "dagster._core.storage.event_log", "the event_logs table, whose id the Postgres insert returns"
    ),
    "ConcurrencyLimitsTable": Private(
        "dagster._core.storage.event_log.schema",
        "the pools' limit rows, upserted by the Postgres event log (dagster-io/dagster#33552)",
    ),
    "create_pg_engine": Private(
        "dagster_postgres.utils", "builds the Postgres engine as dagster-postgres does (token provider included)"
    ),
    "pg_url_from_config": Private(
        "dagster_postgres.utils", "the `postgres_db`/`postgres_url` config block read as dagster-postgres reads it"
    ),
    "get_token_provider_from_config": Private(
        "dagster_postgres.utils", "the config block's token provider, read as dagster-postgres reads it"
    ),
    # Run launcher (ml_platform/run_launcher.py)
    "RunLauncher": Private(
        "dagster._core.launcher.base", "the base of every run launcher; dagster exports only the default one"
    ),
    "LaunchRunContext": Private("dagster._core.launcher.base", "what `RunLauncher.launch_run` receives"),
    "ResumeRunContext": Private("dagster._core.launcher.base", "what `RunLauncher.resume_run` receives"),
    "CheckRunHealthResult": Private(
        "dagster._core.launcher.base", "what `RunLauncher.check_run_worker_health` returns to run monitoring"
    ),
    "WorkerStatus": Private("dagster._core.launcher.base", "the worker state inside a CheckRunHealthResult"),
    "JobPythonOrigin": Private(
        "dagster._core.origin", "the code a run executes (`DagsterRun.job_code_origin`'s type; annotations only)"
    ),
    "ExecuteRunArgs": Private(
        "dagster._grpc.types", "the `dagster api execute_run` command line, built as Dagster's own launchers build it"
    ),
    "ResumeRunArgs": Private(
        "dagster._grpc.types", "the `dagster api resume_run` command line, built as Dagster's own launchers build it"
    ),
    # Run submission (ml_platform/runner.py)
    "CLIENT_SUBMIT_PIPELINE_RUN_MUTATION": Private(
        "dagster_graphql.client.client_queries",
        "the launch mutation `DagsterGraphQLClient` sends, sent here by `dagster-graphql` without a webserver",
        prefer="dagster_graphql.DagsterGraphQLClient.submit_job_execution where a webserver runs",
    ),
    # Tests and benchmarks
    "RepositorySnap": Private(
        "dagster._core.remote_representation.external_data",
        "the snapshot a code server serves for the UI, whose cost benchmarks/code_location.py measures",
    ),
    "DagsterKubernetesClient": Private(
        "dagster_k8s.client", "the client K8sRunLauncher builds, replaced in the tests by one over recorded APIs"
    ),
    "define_out_of_process_workspace": Private(
        "dagster_graphql.test.utils", "a code location loaded in a code server as the webserver loads it"
    ),
    "execute_dagster_graphql": Private(
        "dagster_graphql.test.utils", "runs a query against that context as the UI's requests do"
    ),
}


def __getattr__(name: str) -> Any:
    """`from ml_platform.dagster_internals import X`: X from its module, imported at first use."""
    private = SYMBOLS.get(name)
    if private is None:
        raise AttributeError(
            f"ml_platform.dagster_internals has no {name!r}: add it to SYMBOLS with why the public API does not do"
        )
    value = getattr(importlib.import_module(private.module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # the same names for type checkers, which do not run __getattr__
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned,
        AssetCheckEvaluationTargetMaterializationData,
    )
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
    from dagster._core.event_api import EventHandlerFn
    from dagster._core.events import (
        ASSET_CHECK_EVENTS,
        ASSET_EVENTS,
        AssetMaterializationPlannedData,
        StepMaterializationData,
    )
    from dagster._core.launcher.base import (
        CheckRunHealthResult,
        LaunchRunContext,
        ResumeRunContext,
        RunLauncher,
        WorkerStatus,
    )
    from dagster._core.origin import JobPythonOrigin
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
    from dagster._core.storage.event_log import SqlEventLogStorageTable, SqliteEventLogStorage
    from dagster._core.storage.event_log.polling_event_watcher import SqlPollingEventWatcher
    from dagster._core.storage.event_log.schema import ConcurrencyLimitsTable
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
    from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
    from dagster._serdes import ConfigurableClass, ConfigurableClassData
    from dagster_graphql.client.client_queries import CLIENT_SUBMIT_PIPELINE_RUN_MUTATION
    from dagster_graphql.test.utils import define_out_of_process_workspace, execute_dagster_graphql
    from dagster_k8s.client import DagsterKubernetesClient
    from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
