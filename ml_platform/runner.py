"""Run a use case's assets in-process against a Dagster instance (demo, CLI, tests, benchmarks), or submit
them to a deployed instance's run queue (CLI).

The UI and the daemon launch the same assets through the same definitions;
in-process is the shortest path from a shell to a recorded, gated materialization. A submitted run is
created from the code location's job by Dagster's own launch mutation, so the instance's run coordinator
queues it and its run launcher starts it (a pod under K8sRunLauncher), as a run launched from the UI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import yaml

from ml_platform.assets import keys
from ml_platform.automation.runs import range_tags
from ml_platform.spec import UseCaseSpec

DAILY_STAGES = ("raw_events", "features", "predictions")
MONITORING_STAGES = ("drift",)
TRAINING_STAGES = ("training_set", "model", "champion")


def materialize_stages(
    defs: dg.Definitions,
    spec: UseCaseSpec,
    stages: Sequence[str],
    instance: dg.DagsterInstance,
    days: Sequence[str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    raise_on_error: bool = False,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """Materialize the named stages of one use case, over a day range when `days` is given."""
    selection = [keys.of_stage(spec, stage) for stage in stages]
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    return dg.materialize(
        assets=[
            asset
            for asset in defs.assets or []
            if isinstance(asset, dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset)
        ],
        selection=selection,
        instance=instance,
        resources=dict(defs.resources or {}),
        # one day runs as a plain partitioned run (as schedules and sensors launch it), more as a range
        partition_key=days[0] if days and len(days) == 1 else None,
        # readable in the UI's run list: which use case, which stages
        tags={
            "ml_platform/use_case": spec.name,
            "ml_platform/stage": " -> ".join(stages),
            **(range_tags(days) if days and len(days) > 1 else {}),
        },
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


# The queue's daemon writes a heartbeat every 30 s (Dagster's default interval); a newer one than this means it
# is serving the queue. Dagster's UI tolerates 30 min, but a run queued behind a dead daemon would never start.
DAEMON_ALIVE_S = 120.0


def daemon_serves_queue(instance: dg.DagsterInstance) -> bool:
    """Whether runs submitted to `instance` get launched: it queues runs (QueuedRunCoordinator) and its
    daemon's queue loop beat recently."""
    if not isinstance(instance.run_coordinator, dg.QueuedRunCoordinator):
        return False
    heartbeat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return heartbeat is not None and time.time() - heartbeat.timestamp < DAEMON_ALIVE_S


def stage_job(spec: UseCaseSpec, stages: Sequence[str]) -> str:
    """The code location's job holding `stages`: the training job, or the daily job (a subset of its assets)."""
    return f"{spec.name}_training" if set(stages) <= set(TRAINING_STAGES) else f"{spec.name}_daily"


def submit_tags(spec: UseCaseSpec, stages: Sequence[str], days: Sequence[str] | None) -> dict[str, str]:
    """The tags `materialize_stages` gives its run, with one day as the documented `dagster/partition` tag."""
    tags = {"ml_platform/use_case": spec.name, "ml_platform/stage": " -> ".join(stages)}
    if days and len(days) == 1:
        return {**tags, "dagster/partition": days[0]}
    return {**tags, **(range_tags(days) if days else {})}


def submit_to_webserver(url: str, spec: UseCaseSpec, stages: Sequence[str], days: Sequence[str] | None) -> str:
    """Submit the stages' run through the webserver at `url` (Dagster's GraphQL client); returns the run id."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url: expected the webserver's address as http(s)://host[:port][/prefix], got '{url}'")
    client = DagsterGraphQLClient(
        parts.hostname, port_number=parts.port, use_https=parts.scheme == "https", path_prefix=parts.path.rstrip("/")
    )
    try:
        return client.submit_job_execution(
            stage_job(spec, stages),
            tags=submit_tags(spec, stages, days),
            asset_selection=[keys.of_stage(spec, stage) for stage in stages],
        )
    except DagsterGraphQLClientError as error:  # the job is unknown there, or the run was refused
        raise ValueError(f"{url} refused the run of {stage_job(spec, stages)}: {error}") from None


def submit_to_instance(workspace: Path, spec: UseCaseSpec, stages: Sequence[str], days: Sequence[str] | None) -> str:
    """Submit the stages' run to $DAGSTER_HOME's instance with `dagster-graphql` on `workspace`: the mutation
    DagsterGraphQLClient sends, executed without a webserver; returns the run id."""
    from ml_platform.dagster_internals import CLIENT_SUBMIT_PIPELINE_RUN_MUTATION

    tags = submit_tags(spec, stages, days)
    variables = {
        "executionParams": {
            "selector": {
                "repositoryLocationName": workspace_location(workspace),
                "repositoryName": "__repository__",
                "pipelineName": stage_job(spec, stages),
                "assetSelection": [{"path": keys.of_stage(spec, stage).path} for stage in stages],
            },
            "runConfigData": {},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]},
        }
    }
    with tempfile.TemporaryDirectory() as directory:
        response = Path(directory) / "response.json"
        command = [
            str(Path(sys.executable).parent / "dagster-graphql"),
            "-w",
            str(workspace),
            "-t",
            CLIENT_SUBMIT_PIPELINE_RUN_MUTATION,
            "-v",
            json.dumps(variables),
            "--output",
            str(response),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not response.exists():
            raise ValueError(
                f"dagster-graphql -w {workspace} exited with {done.returncode}: {done.stderr.strip()[-2000:]}"
            )
        answer = json.loads(response.read_text())
    launched = (answer.get("data") or {}).get("launchPipelineExecution") or {}
    if launched.get("__typename") not in ("LaunchRunSuccess", "LaunchPipelineRunSuccess"):
        raise ValueError(
            f"the instance refused the run of {stage_job(spec, stages)}: {launched or answer.get('errors')}"
        )
    return launched["run"]["runId"]


def workspace_location(workspace: Path) -> str:
    """The name of the one code location `workspace` (a workspace.yaml) loads."""
    try:
        entries = yaml.safe_load(workspace.read_text())["load_from"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ValueError(f"{workspace}: expected a Dagster workspace.yaml with load_from ({error})") from None
    names = [target.get("location_name") for entry in entries for target in entry.values() if isinstance(target, dict)]
    if len(names) != 1 or not names[0]:
        raise ValueError(f"{workspace}: expected one load_from entry with a location_name, got {names}")
    return names[0]
