"""The daily report of a multiclass use case (news topics): Markdown from each day's predictions.

Each day's report is a file in the lake (`<use case>/report/<day>.md`) and the `report` metadata of the
asset's partition, which Dagster's UI renders as Markdown on the asset's page. A day whose predictions
are not materialized fails the run naming it: a report is never written from nothing.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.daily import ranged
from ml_platform.features.compute import DAY
from ml_platform.io.parquet_lake import DataLake
from ml_platform.report import HISTORY_DAYS, daily_report, history_days, text_feature
from ml_platform.spec import UseCaseSpec


def build_report_assets(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The `report` asset of a multiclass use case; none for other tasks."""
    if spec.label.task != "multiclass":
        return []
    key, predictions_key, features_key = keys.report(spec), keys.predictions(spec), keys.features(spec)
    text = text_feature(spec)

    @dg.multi_asset(
        name=f"{spec.name}__report",
        specs=[dg.AssetSpec(
            key,
            description=f"{spec.name}: the day's report (Markdown): items per class and the change against the "
            f"previous {HISTORY_DAYS} days, the least confident items, the clearest examples of each class.",
            kinds={"markdown"}, deps=[predictions_key, features_key], group_name=spec.name, owners=spec.owners,
        )],
        **ranged(partitions_def),
    )
    def report(context: dg.AssetExecutionContext, lake: DataLake) -> Iterator[Any]:
        days = context.partition_keys
        missing = sorted(set(days) - set(lake.existing_partitions(predictions_key)))
        if missing:
            raise dg.Failure(f"{spec.name}: predictions for partition(s) {missing[:5]} are not materialized; "
                             "no report is written for them", allow_retries=False)
        for day in days:
            scored = lake.read(predictions_key, [day]).merge(
                lake.read(features_key, [day], columns=[*spec.key_columns, DAY, text]), on=[*spec.key_columns, DAY],
                how="left", validate="one_to_one",
            )
            history = lake.read(predictions_key, history_days(day), missing_ok=True)
            markdown = daily_report(spec, day, scored, history)
            path = lake.write_text(key, day, markdown)
            counts = scored[steps.PREDICTED_CLASS].value_counts()
            context.add_asset_metadata({
                "report": dg.MetadataValue.md(markdown), "path": dg.MetadataValue.path(path), "items": len(scored),
                "class_counts": dg.MetadataValue.json({str(name): int(count) for name, count in counts.items()}),
            }, asset_key=key, partition_key=day)
        yield dg.MaterializeResult(asset_key=key, metadata={"days": len(days)})

    return [report]
