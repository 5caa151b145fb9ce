"""Reading an in-process run's result by asset: a use case's daily assets share one step (`<uc>__daily`)."""

from __future__ import annotations

import dagster as dg

from ml_platform_tests.support.fixtures import StoredRun


def materializations(result: dg.ExecuteInProcessResult | StoredRun, key: dg.AssetKey) -> list[dg.AssetMaterialization]:
    """The run's materializations of one asset, in the order they were recorded."""
    return [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == key
    ]


def daily_step(spec_name: str) -> str:
    """The step (op) that runs every daily asset of a use case."""
    return f"{spec_name}__daily"
