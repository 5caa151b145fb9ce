"""What Dagster's UI shows for the churn checks, read through the GraphQL schema the webserver serves.

The check *Partitions* tab reads `partitionStatuses`, the asset node's check summary reads
`executionForLatestMaterialization`, a partition's panel reads `assetCheckExecutions(partition: ...)`;
none of these is among the queries `DagsterGraphQLClient` ships. A view loads the code location in one code
server when its `with` block starts and stops it when the block ends; each query reads the instance as it is then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import dagster as dg

from ml_platform.dagster_internals import define_out_of_process_workspace, execute_dagster_graphql

REPO_ROOT = Path(__file__).resolve().parents[2]

STATUSES = """
query CheckStatuses {
  assetNodes {
    assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks {
      name
      executionForLatestMaterialization { status partition }
      partitionStatuses { ... on AssetCheckTimePartitionStatuses { ranges { status startKey endKey } } }
    } } }
  }
}
"""

ASSET_PARTITIONS = """
query AssetPartitions {
  assetNodes {
    assetKey { path }
    partitionStats { numMaterialized numFailed }
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } }
  }
}
"""

PARTITION_EXECUTIONS = """
query PartitionPanel($assetKey: AssetKeyInput!, $checkName: String!, $partition: String) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, partition: $partition, limit: 1) {
    status partition evaluation { description metadataEntries { label } }
  }
}
"""


class CheckView:
    """The UI's view of the churn checks on one instance."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        self._workspace = self._stack.enter_context(
            define_out_of_process_workspace(str(REPO_ROOT / "ml_platform" / "definitions.py"), "defs", self.instance)
        )
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stack.close()

    def _query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        result = execute_dagster_graphql(self._workspace.create_request_context(), query, variables)
        assert not result.errors, result.errors
        return result.data

    def asset_partitions(self) -> dict[str, dict[str, str]]:
        """asset -> {day: MATERIALIZED | FAILED | MATERIALIZING} as each asset's Partitions view draws it (with
        `self.partition_stats`: asset -> the counts the asset page shows)."""
        view: dict[str, dict[str, str]] = {}
        self.partition_stats: dict[str, dict[str, int]] = {}
        for node in self._query(ASSET_PARTITIONS)["assetNodes"]:
            if node["assetKey"]["path"][0] != "churn" or node["partitionStats"] is None:
                continue
            asset = node["assetKey"]["path"][1]
            view[asset] = _days(node["assetPartitionStatuses"].get("ranges", []))
            self.partition_stats[asset] = node["partitionStats"]
        return view

    def statuses(self) -> dict[tuple[str, str], dict[str, str]]:
        """(asset, check) -> {day: status} as the Partitions tab draws it (days absent are 'Missing')."""
        view: dict[tuple[str, str], dict[str, str]] = {}
        self.latest: dict[tuple[str, str], str | None] = {}
        for node in self._query(STATUSES)["assetNodes"]:
            if node["assetKey"]["path"][0] != "churn":
                continue
            asset = node["assetKey"]["path"][1]
            for check in node["assetChecksOrError"].get("checks", []):
                view[(asset, check["name"])] = _days((check["partitionStatuses"] or {}).get("ranges", []))
                latest = check["executionForLatestMaterialization"]
                self.latest[(asset, check["name"])] = latest and latest["status"]
        return view

    def partition_panel(self, asset_key: dg.AssetKey, check: str, day: str) -> dict[str, Any]:
        variables = {"assetKey": {"path": asset_key.path}, "checkName": check, "partition": day}
        [execution] = self._query(PARTITION_EXECUTIONS, variables)["assetCheckExecutions"]
        return execution


def _days(ranges: list[dict[str, str]]) -> dict[str, str]:
    """{day: status} from the status ranges the UI draws (days in no range are 'Missing')."""
    days: dict[str, str] = {}
    for entry in ranges:
        first, last = dt.date.fromisoformat(entry["startKey"]), dt.date.fromisoformat(entry["endKey"])
        days.update(
            {(first + dt.timedelta(days=i)).isoformat(): entry["status"] for i in range((last - first).days + 1)}
        )
    return days
