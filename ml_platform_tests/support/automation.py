"""Sensors evaluated through Dagster's test context, as the automation tests (and others) drive them."""

from __future__ import annotations

import json

import dagster as dg


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.get_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=dict(defs.resources or {}), definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def requested_ranges(requests: list[dg.RunRequest]) -> list[tuple[str | None, str | None]]:
    return sorted(
        (r.tags.get("dagster/asset_partition_range_start"), r.tags.get("dagster/asset_partition_range_end"))
        for r in requests
    )


def landed_days(cursor: str, defs: dg.Definitions, use_case: str = "churn") -> dict[str, list[str]]:
    """The landed days (day -> [version, digest]) a landed-data sensor's cursor names, read from the lake."""
    state = json.loads(cursor)["state"]
    return defs.resources["lake"].read_state(f"{use_case}/landed_data", state)
