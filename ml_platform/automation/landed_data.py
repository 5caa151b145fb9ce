"""The landed-data sensor: new or changed source days run as partition ranges.

A day reruns when its content digest changes (consecutive days share one run
request, and the processed days whose feature windows contain a corrected day
rerun with it); entries that cannot be a day's data are reported once and
never touched. The source kind stays behind the `Source` protocol.

With `source.missing_days: empty` a landed day never waits for the days without
a file before it: those not yet stored run in the same request (stored empty),
so its feature windows are complete. A day stored empty whose file lands later
(the schedule ran before it arrived) is a corrected day: it reruns, and so do the
stored days whose windows contain it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass, field

import dagster as dg

from ml_platform.assets import keys
from ml_platform.automation.runs import (
    content_run_key,
    contiguous_ranges,
    current_partition_keys,
    default_status,
    range_run_request,
)
from ml_platform.dagster_internals import UnresolvedAssetJobDefinition
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.alerts import AlertResource
from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.resources.sources import Source, source_resource_key
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec

# A tick lists the landing directory and hashes only files whose size or mtime changed: cheap enough to
# look on every loop of the daemon (which comes round every 5 s), so a landed file starts its run within
# seconds. Below the loop's period on purpose: at exactly 5 s, a loop that came round a moment early
# skipped the sensor, and the file waited 10 s.
LANDED_DATA_INTERVAL_S = 1
DayVersion = tuple[str, str]  # (cheap version, content digest)


def build_landed_data_sensor(
    spec: UseCaseSpec,
    settings: Settings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    daily_job: UnresolvedAssetJobDefinition,
) -> dg.SensorDefinition:
    source_key = source_resource_key(spec)

    @dg.sensor(
        name=f"{spec.name}_landed_data_sensor",
        job=daily_job,
        minimum_interval_seconds=settings.sensor_interval(LANDED_DATA_INTERVAL_S),
        default_status=default_status(settings),
        description=f"Runs new or changed {spec.name} source days (by content hash); consecutive days share one run. "
        "Entries that cannot be a day's data are reported once and left where they are.",
        required_resource_keys={source_key, "lake", "alerts", "mlflow"},  # the source's key is the use case's own
    )
    def landed_data(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        events = getattr(context.resources, source_key).source_for(spec)
        lake, alerts, mlflow = context.resources.lake, context.resources.alerts, context.resources.mlflow
        seen = _LandedCursor.parse(context.cursor, lake, spec)
        if seen.lost:
            context.log.warning(
                f"{spec.name}: the landed days named by the cursor are not in the lake; "
                "adopting the days already ingested, as on a first tick"
            )
        partition_keys = current_partition_keys(partitions_def)
        landed, unpartitioned = _split_unpartitioned(spec, events, _landed_days(events, seen.days), partition_keys)
        rejected = {**events.rejected(), **unpartitioned}
        _report_rejected(
            context, alerts, spec, {name: why for name, why in rejected.items() if seen.reported.get(name) != why}
        )
        adopted = _already_in_lake(spec, events, lake, landed) if context.cursor is None or seen.lost else set()
        before = {day: digest for day, (_, digest) in seen.days.items()}
        changed = [day for day, (_, digest) in landed.items() if day not in adopted and before.get(day) != digest]
        processed: Collection[str] = before
        if spec.missing_days == "empty" and changed:  # a quiet tick lists no lake
            stored = set(lake.existing_partitions(keys.raw_events(spec)))
            processed = {*before, *stored}
            changed += _days_without_file(sorted(landed), changed, stored, partition_keys)
        changed += _windows_containing(spec, [day for day in changed if day in processed], processed, changed)
        selection = _landed_run_selection(spec, mlflow)
        requests = [
            range_run_request(
                days,
                asset_selection=selection,
                run_key=content_run_key(
                    days,
                    [landed[day][1] if day in landed else "" for day in days],
                    [before.get(day, "") for day in days],
                ),
            )
            for days in contiguous_ranges(changed, partition_keys)
        ]
        cursor = _LandedCursor(days=landed, reported=rejected).dump(lake, spec, seen)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        return dg.SensorResult(
            skip_reason=f"no new or changed {spec.name} days"
            + (f"; not processed: {sorted(rejected)}" if rejected else ""),
            cursor=cursor,
        )

    return landed_data


def _landed_run_selection(spec: UseCaseSpec, mlflow: MlflowResource) -> list[dg.AssetKey] | None:
    """What a landed-data run materializes: the whole daily job, except that until a first champion
    exists (the MLflow alias: the one place the champion lives) there is nothing to score with, so it
    ingests and builds features only. An unreachable registry fails the tick rather than guess."""
    if mlflow.version_by_alias(spec.name, CHAMPION) is not None:
        return None
    return [keys.raw_events(spec), keys.features(spec)]


@dataclass
class _LandedCursor:
    """What the sensor has seen. Each landed day's version and digest are kept in the lake (`DataLake.write_state`)
    and the cursor names them by content hash: Dagster writes a sensor's cursor into every tick's row and into
    its state, every tick, and at 10,000 landed days they are 1.1 MB (2 MB written a tick, kept a week)."""

    days: dict[str, DayVersion] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)  # rejected entry -> reason already reported
    state: str | None = None  # the content hash of `days` in the lake
    lost: bool = False  # the cursor named days the lake no longer has

    @classmethod
    def parse(cls, cursor: str | None, lake: DataLake, spec: UseCaseSpec) -> _LandedCursor:
        saved = json.loads(cursor) if cursor else {}
        days = saved.get("days")  # a cursor from before the days moved to the lake holds them itself
        if days is None and saved.get("state"):
            days = lake.read_state(_state_name(spec), saved["state"])
        lost = days is None and bool(saved.get("state"))
        return cls(
            {day: tuple(pair) for day, pair in (days or {}).items()},
            saved.get("reported", {}),
            None if lost else saved.get("state"),
            lost,
        )

    def dump(self, lake: DataLake, spec: UseCaseSpec, previous: _LandedCursor) -> str:
        """The cursor; the days are written to the lake only when they changed (a quiet tick writes nothing)."""
        unchanged = previous.state is not None and self.days == previous.days
        state = previous.state if unchanged else lake.write_state(_state_name(spec), self.days, keep=[previous.state])
        return json.dumps({"state": state, "reported": self.reported}, sort_keys=True)


def _state_name(spec: UseCaseSpec) -> str:
    return f"{spec.name}/landed_data"


def _landed_days(events: Source, known: dict[str, DayVersion]) -> dict[str, DayVersion]:
    """Each landed day's (version, content digest), computing the digest only where the version changed
    (hashing a year of files every 30 s would be the sensor's whole cost)."""
    landed = {}
    for day, version in events.versions().items():
        previous = known.get(day)
        landed[day] = (version, previous[1] if previous and previous[0] == version else events.digest(day, version))
    return landed


def _split_unpartitioned(
    spec: UseCaseSpec, events: Source, landed: dict[str, DayVersion], partition_keys: list[str]
) -> tuple[dict[str, DayVersion], dict[str, str]]:
    """The landed days that have a partition, and the entries of the others with the reason. They stay out
    of the cursor, so the in-progress day (today: its partition exists tomorrow) runs once it exists,
    and is not reported meanwhile."""
    in_progress = _next_day(partition_keys[-1]) if partition_keys else spec.start_date.isoformat()
    partitioned = set(partition_keys)
    kept = {day: version for day, version in landed.items() if day in partitioned}
    rejected = {
        events.entry_name(day): f"day {day} is outside the partitions {partition_keys[0]}..{partition_keys[-1]}"
        if partition_keys
        else f"no partition exists yet (start_date {spec.start_date})"
        for day in sorted(set(landed) - partitioned)
        if day != in_progress
    }
    return kept, rejected


def _next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _days_without_file(landed: list[str], changed: list[str], stored: set[str], partition_keys: list[str]) -> list[str]:
    """Under `missing_days: empty`, the days without a file between each changed day and the landed day before
    it that are not stored yet: they run with it. Days before the first file are no history and never run."""
    position = {key: index for index, key in enumerate(partition_keys)}
    gaps: set[str] = set()
    for day in changed:
        earlier = bisect.bisect_left(landed, day)
        if earlier:
            gaps.update(partition_keys[position[landed[earlier - 1]] + 1 : position[day]])
    return sorted(gaps - stored - set(changed))


def _windows_containing(
    spec: UseCaseSpec, corrected: list[str], processed: Collection[str], changed: list[str]
) -> list[str]:
    """Processed days after a corrected one whose feature windows contain it: they are rerun with it (features
    declare raw day D as their input, so Dagster itself would not see them as stale)."""
    followers = {
        later
        for day in corrected
        for offset in range(1, spec.lookback_days)
        if (later := (dt.date.fromisoformat(day) + dt.timedelta(days=offset)).isoformat()) in processed
    }
    return sorted(followers - set(changed))


def _report_rejected(
    context: dg.SensorEvaluationContext, alerts: AlertResource, spec: UseCaseSpec, new: dict[str, str]
) -> None:
    """Say once, in the tick log and to the alert sinks, which landed entries will not be processed."""
    if not new:
        return
    lines = [f"{name}: {why}" for name, why in sorted(new.items())]
    context.log.warning(
        f"{spec.name}: not processing {len(new)} landed entr(y/ies), left in place:\n" + "\n".join(lines)
    )
    alerts.send(
        "landing_rejected",
        f"{spec.name}: {len(new)} landed entr(y/ies) cannot be processed",
        "\n".join(lines),
        severity="warning",
        details={"use_case": spec.name, "rejected": new},
    )


def _already_in_lake(spec: UseCaseSpec, events: Source, lake: DataLake, landed: dict[str, DayVersion]) -> set[str]:
    """On a sensor's first tick, days whose raw partition was written after the source last changed (or
    at all, where the source cannot tell when it did): a new Dagster instance (or a move to Postgres
    storage) must not reprocess a year of history."""
    written = lake.modified_times(keys.raw_events(spec))
    return {
        day
        for day in landed
        if day in written and ((changed := events.changed_at(day)) is None or written[day] >= changed)
    }
