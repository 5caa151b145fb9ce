"""The daily report of a multiclass use case (news topics): Markdown from each day's predictions.

Each day's report is a file in the lake (`<use case>/report/<day>.md`) and the `report` metadata of the
asset's partition, which Dagster's UI renders as Markdown on the asset's page. A day whose predictions
are not materialized fails (its `inputs_complete` check says why): a report is never written from nothing.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.conventions import daily_conventions
from ml_platform.assets.range_step import DailyStage, RangeStep
from ml_platform.checks.gate import gate_check_specs
from ml_platform.checks.rules import passed
from ml_platform.features.compute import DAY
from ml_platform.report import HISTORY_DAYS, daily_report, history_days, text_feature
from ml_platform.spec import UseCaseSpec

REPORT_CHECKS = {"inputs_complete": "The day's predictions are materialized: a report is never written from nothing."}


def report_stages(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> list[DailyStage]:
    """The `report` stage of a multiclass use case; none for other tasks."""
    if spec.label.task != "multiclass":
        return []
    key, predictions_key, features_key = keys.report(spec), keys.predictions(spec), keys.features(spec)
    text = text_feature(spec)

    def report(step: RangeStep) -> Iterator[Any]:
        lake, gate = step.context.resources.lake, step.gate(key)
        blocked = step.failed_days(predictions_key)
        available = set(lake.existing_partitions(predictions_key))
        for day in step.context.partition_keys:
            if day in blocked or day not in available:
                gate.block(
                    day,
                    "inputs_complete",
                    blocked.get(
                        day,
                        f"{predictions_key.to_user_string()} {day} is not materialized; no report is written for it",
                    ),
                )
                continue
            gate.evaluate(day, [passed("inputs_complete", day, "predictions materialized")])
            scored = lake.read(predictions_key, [day]).merge(
                lake.read(features_key, [day], columns=[*spec.key_columns, DAY, text]),
                on=[*spec.key_columns, DAY],
                how="left",
                validate="one_to_one",
            )
            history = lake.read(predictions_key, history_days(day), missing_ok=True)
            markdown = daily_report(spec, day, scored, history)
            path = lake.write_text(key, day, markdown)
            counts = scored[steps.PREDICTED_CLASS].value_counts()
            gate.record_written(
                day,
                len(scored),
                report=dg.MetadataValue.md(markdown),
                path=dg.MetadataValue.path(path),
                class_counts=dg.MetadataValue.json({str(name): int(count) for name, count in counts.items()}),
            )
        yield from gate.conclude(days=len(gate.rows))

    return [
        DailyStage(
            dg.AssetSpec(
                key,
                description=f"{spec.name}: the day's report (Markdown): items per class and the change against the "
                f"previous {HISTORY_DAYS} days, the least confident items, the clearest examples of each class.",
                kinds={"markdown"},
                deps=[predictions_key, features_key],
                group_name=spec.name,
                owners=spec.owners,
                **daily_conventions(spec, "report"),
            ),
            gate_check_specs(key, REPORT_CHECKS, partitions_def),
            report,
        )
    ]
