"""The webserver's GraphQL, as the tests and benchmarks use it.

`client(url)` is dagster_graphql's `DagsterGraphQLClient`, with the operations it ships: submit a job,
a run's status, reload or shut down a code location, terminate runs. `graphql(url, ...)` sends the few
operations it does not ship, each defined here or next to the one test that reads it: the UI's
`LaunchPartitionBackfill` mutation (ui-core `instance/backfill/BackfillMutation.ts`, with the variables
that `LaunchAssetChoosePartitionsDialog.onLaunchAsBackfill` builds for a pure asset selection:
`{tags, assetSelection, partitionNames, fromFailure: false}`), the backfill page, asset checks, sensor
ticks, daemon health and the workspace's load status. Waiting is `polling.poll_until`.
(What the UI shows for check partitions is read in process, without a webserver: check_view.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster_graphql import DagsterGraphQLClient

from ml_platform_tests.support.polling import poll_until

TERMINAL_BACKFILL_STATUSES = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})


class GraphQLError(RuntimeError):
    """A GraphQL call failed, returned errors, or answered with an unexpected result type."""


def client(url: str, timeout: int = 60) -> DagsterGraphQLClient:
    """Dagster's own GraphQL client for the webserver at `url` (http://host:port)."""
    parts = urlsplit(url)
    return DagsterGraphQLClient(parts.hostname or "127.0.0.1", port_number=parts.port, timeout=timeout)


def graphql(
    url: str,
    query: str,
    variables: Mapping[str, Any] | None = None,
    operation: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST an operation DagsterGraphQLClient does not ship; returns `data`, raises on transport or GraphQL errors."""
    body: dict[str, Any] = {"query": query, "variables": dict(variables or {})}
    if operation:
        body["operationName"] = operation
    response = requests.post(f"{url}/graphql", json=body, timeout=timeout)
    if not response.ok:
        raise GraphQLError(f"GraphQL HTTP {response.status_code}: {response.text[:2000]}")
    payload = response.json()
    if payload.get("errors"):
        raise GraphQLError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


PYTHON_ERROR_FRAGMENT = """
fragment PythonErrorFragment on PythonError {
  message
  stack
  errorChain {
    isExplicitLink
    error { message stack }
  }
}
"""

# The UI's mutation, verbatim in shape (ui-core/src/instance/backfill/BackfillMutation.ts).
LAUNCH_PARTITION_BACKFILL_MUTATION = (
    """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess {
      backfillId
    }
    ... on PartitionSetNotFoundError {
      message
    }
    ... on PartitionKeysNotFoundError {
      message
    }
    ... on InvalidStepError {
      invalidStepKey
    }
    ... on InvalidOutputError {
      stepKey
      invalidOutputName
    }
    ... on UnauthorizedError {
      message
    }
    ... on PipelineNotFoundError {
      message
    }
    ... on RunConflict {
      message
    }
    ... on ConflictingExecutionParamsError {
      message
    }
    ... on PresetNotFoundError {
      message
    }
    ... on RunConfigValidationInvalid {
      pipelineName
      errors {
        message
        path
        reason
      }
    }
    ...PythonErrorFragment
  }
}
"""
    + PYTHON_ERROR_FRAGMENT
)

WORKSPACE_QUERY = """
query WorkspaceLoadStatus {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name }
          ... on PythonError { message stack errorChain { error { message stack } } }
        }
      }
    }
    ... on PythonError { message stack }
  }
}
"""

DAEMON_HEALTH_QUERY = """
query DaemonHealth {
  instance {
    daemonHealth {
      allDaemonStatuses { daemonType required healthy lastHeartbeatTime }
    }
  }
}
"""

BACKFILL_QUERY = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      isAssetBackfill
      numPartitions
      partitionNames
      timestamp
      endTimestamp
      assetSelection { path }
      runs { runId status creationTime startTime endTime }
      error { message stack }
      assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
        assetKey { path } numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed
      } } }
    }
    ... on BackfillNotFoundError { message }
    ... on PythonError { message stack }
  }
}
"""

RUNS_BY_TAG_QUERY = """
query RunsByTag($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs {
      results { runId status creationTime startTime endTime tags { key value } }
    }
    ... on PythonError { message stack }
  }
}
"""


def _asset_key_input(key: Any) -> dict[str, list[str]]:
    """AssetKey, 'a/b' string or path sequence -> GraphQL AssetKeyInput."""
    if hasattr(key, "path"):
        return {"path": list(key.path)}
    if isinstance(key, str):
        return {"path": key.split("/")}
    return {"path": list(key)}


def launch_partition_backfill(
    url: str,
    asset_keys: Iterable[Any],
    partition_names: Sequence[str],
    tags: Sequence[Mapping[str, str]] = (),
) -> str:
    """Launch an asset backfill exactly as the UI's "Materialize selected... > Launch backfill" does.

    Returns the backfill id; raises with the server's message on any other result type.
    """
    backfill_params = {
        "tags": [dict(tag) for tag in tags],
        "assetSelection": [_asset_key_input(key) for key in asset_keys],
        "partitionNames": list(partition_names),
        "fromFailure": False,
    }
    data = graphql(
        url, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": backfill_params}, "LaunchPartitionBackfill"
    )
    result = data["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise GraphQLError(f"launchPartitionBackfill returned {result['__typename']}: {result}")
    return result["backfillId"]


def get_backfill(url: str, backfill_id: str) -> dict[str, Any]:
    result = graphql(url, BACKFILL_QUERY, {"backfillId": backfill_id}, "BackfillStatus")["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise GraphQLError(f"partitionBackfillOrError returned {result['__typename']}: {result}")
    return result


def get_backfill_targets(url: str, backfill_id: str, asset_keys: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """What an asset backfill targets per asset, as the backfill page shows it.

    Returns {"a/b": {"ranges": [(start, end), ...] or None, "partitionKeys": [...] or None}}.
    """
    inputs = [_asset_key_input(key) for key in asset_keys]
    fields = "\n".join(
        f"t{i}: partitionsTargetedForAssetKey(assetKey: $k{i}) {{ ranges {{ start end }} partitionKeys }}"
        for i in range(len(inputs))
    )
    arguments = ", ".join(f"$k{i}: AssetKeyInput" for i in range(len(inputs)))
    query = f"""
query BackfillTargets($backfillId: String!, {arguments}) {{
  partitionBackfillOrError(backfillId: $backfillId) {{
    __typename
    ... on PartitionBackfill {{ {fields} }}
    ... on PythonError {{ message stack }}
  }}
}}
"""
    variables: dict[str, Any] = {"backfillId": backfill_id, **{f"k{i}": key for i, key in enumerate(inputs)}}
    result = graphql(url, query, variables, "BackfillTargets")["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise GraphQLError(f"partitionBackfillOrError returned {result['__typename']}: {result}")
    targets = {}
    for i, key in enumerate(inputs):
        target = result[f"t{i}"] or {}
        ranges = target.get("ranges")
        targets["/".join(key["path"])] = {
            "ranges": [(r["start"], r["end"]) for r in ranges] if ranges is not None else None,
            "partitionKeys": target.get("partitionKeys"),
        }
    return targets


def asset_check_names(url: str, asset_key: Any) -> list[str]:
    """Names of the asset checks the loaded code location defines on `asset_key` (as the UI lists them)."""
    query = """
query AssetChecks($assetKey: AssetKeyInput!) {
  assetNodes(assetKeys: [$assetKey]) {
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name } }
    }
  }
}
"""
    nodes = graphql(url, query, {"assetKey": _asset_key_input(asset_key)}, "AssetChecks")["assetNodes"]
    if len(nodes) != 1 or nodes[0]["assetChecksOrError"]["__typename"] != "AssetChecks":
        raise GraphQLError(f"no asset checks for {asset_key}: {nodes}")
    return sorted(check["name"] for check in nodes[0]["assetChecksOrError"]["checks"])


def backfill_run_ids(url: str, backfill_id: str) -> list[str]:
    """Ids of every run tagged with the backfill (what the backfill page lists)."""
    runs = graphql(
        url, RUNS_BY_TAG_QUERY, {"filter": {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}}, "RunsByTag"
    )["runsOrError"]
    if runs["__typename"] != "Runs":
        raise GraphQLError(f"runsOrError returned {runs['__typename']}: {runs}")
    return [run["runId"] for run in runs["results"]]


def wait_for_backfill(
    url: str,
    backfill_id: str,
    timeout: float = 240.0,
    poll: float = 0.5,
    until: Callable[[dict[str, Any]], bool] | None = None,
    alive: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Poll the backfill until `until(backfill)` (default: a terminal status); returns the last poll."""
    done = until or (lambda backfill: backfill["status"] in TERMINAL_BACKFILL_STATUSES)
    seen: list[dict[str, Any]] = []

    def check() -> dict[str, Any] | None:
        seen.append(get_backfill(url, backfill_id))
        return seen[-1] if done(seen[-1]) else None

    return poll_until(
        check,
        f"backfill {backfill_id}",
        timeout=timeout,
        interval=poll,
        alive=alive,
        details=lambda: f"last seen: {seen[-1] if seen else None}",
    )


def mark_first_visit_seen(url: str) -> None:
    """Mark Dagster's first-visit dialog (a newsletter sign-up the UI opens on localhost until the instance has seen
    it, a moment after a page loads) seen, through the mutation its Skip button sends: browser pages then never
    wait for, or click around, a dialog that may or may not open."""
    graphql(url, "mutation SetNuxSeen { setNuxSeen }")


def wait_for_code_location(
    url: str, timeout: float = 120.0, alive: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Wait until every code location of the workspace is LOADED; raises with the load error if one failed."""
    seen: list[list[dict[str, Any]]] = []

    def check() -> list[dict[str, Any]] | None:
        result = graphql(url, WORKSPACE_QUERY, operation="WorkspaceLoadStatus")["workspaceOrError"]
        if result["__typename"] != "Workspace":
            raise GraphQLError(f"workspaceOrError returned {result}")
        entries = result["locationEntries"]
        seen.append(entries)
        for entry in entries:
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") == "PythonError":
                causes = "\n".join(
                    link["error"]["message"] + "".join(link["error"]["stack"])
                    for link in location.get("errorChain") or []
                )
                raise GraphQLError(
                    f"code location {entry['name']} failed to load: {location['message']}{''.join(location['stack'])}\n"
                    f"caused by: {causes}"
                )
        loaded = entries and all(
            entry["loadStatus"] == "LOADED"
            and (entry["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
            for entry in entries
        )
        return entries if loaded else None

    return poll_until(
        check,
        "the code locations to load",
        timeout=timeout,
        interval=0.25,
        alive=alive,
        details=lambda: f"last seen: {seen[-1] if seen else None}",
    )


def wait_for_daemons(url: str, timeout: float = 120.0, alive: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Wait until every required daemon reports a healthy heartbeat."""
    seen: list[list[dict[str, Any]]] = []

    def check() -> list[dict[str, Any]] | None:
        seen.append(
            graphql(url, DAEMON_HEALTH_QUERY, operation="DaemonHealth")["instance"]["daemonHealth"]["allDaemonStatuses"]
        )
        required = [status for status in seen[-1] if status["required"]]
        return seen[-1] if required and all(status["healthy"] for status in required) else None

    return poll_until(
        check,
        "every required daemon to be healthy",
        timeout=timeout,
        interval=0.5,
        alive=alive,
        details=lambda: f"last seen: {seen[-1] if seen else None}",
    )
