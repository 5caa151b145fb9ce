"""Schedules, sensors and declarative automation of a use case.

- daily schedule: yesterday's partition through raw -> features -> predictions;
- retrain schedule (cron of the spec): training set -> model -> champion;
- landed-data sensor: new or changed source days (by content hash) run as
  partition ranges (consecutive days share one single-run request); entries
  that cannot be a day's data are reported once and never touched;
- champion sensor: a new champion (training, promotion, rollback) rescores the
  last `rescore_days` days in one ranged run;
- drift sensor: PSI above the spec's limit on `consecutive_days` consecutive
  days retrains, once per drift episode;
- the automation-condition sensor evaluates conditions such as
  `conditions.FEATURES_FOLLOW_RAW` on the assets.

Default status comes from ML_PLATFORM_AUTOMATION (`running` or `stopped`,
default `stopped`) so tests and the UI decide, not the code.
"""


import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ml_platform import settings
from ml_platform.assets import keys
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.alerts import AlertResource
from ml_platform.resources.sources import EventSource, content_digest, file_signature
from ml_platform.spec import FileSourceSpec, UseCaseSpec

MAX_DAYS_PER_RUN = 366
DRIFT_LOOKBACK_DAYS = 60  # an episode longer than this is still one episode: it started before the window


def default_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.automation_running() else dg.DefaultSensorStatus.STOPPED


def range_run_request(
    days: list[str], run_key: str | None = None, asset_selection: list[dg.AssetKey] | None = None
) -> dg.RunRequest:
    """One run over a contiguous range of daily partitions (a single-run backfill)."""
    if len(days) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=days[0], asset_selection=asset_selection)
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=asset_selection,
        tags={ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]},
    )


def _run_key(days: list[str], digests: list[str], replaced: list[str]) -> str:
    """Same content, same key (Dagster never launches a run key twice); a re-upload with new content, a new key.
    The replaced content is part of the key, so reverting a bad correction (A, B, then A again) still runs."""
    if len(days) == 1:
        return f"{days[0]}..{days[0]}@{digests[0][:16]}" + (f"~{replaced[0][:8]}" if replaced[0] else "")
    content = hashlib.sha256(",".join(f"{new}~{old}" for new, old in zip(digests, replaced)).encode()).hexdigest()
    return f"{days[0]}..{days[-1]}@{content[:16]}"


def contiguous_ranges(days: list[str], all_keys: list[str]) -> Iterator[list[str]]:
    """Split sorted partition keys into runs of consecutive partitions."""
    position = {key: index for index, key in enumerate(all_keys)}
    current: list[str] = []
    for day in sorted(days, key=position.__getitem__):
        if current and (position[day] != position[current[-1]] + 1 or len(current) >= MAX_DAYS_PER_RUN):
            yield current
            current = []
        current.append(day)
    if current:
        yield current


def build_automation(
    spec: UseCaseSpec,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    daily_job: UnresolvedAssetJobDefinition,
    training_job: UnresolvedAssetJobDefinition,
    rescore_job: UnresolvedAssetJobDefinition,
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    schedule_status = dg.DefaultScheduleStatus(default_status().value)
    daily = dg.build_schedule_from_partitioned_job(
        daily_job,
        name=f"{spec.name}_daily_schedule",
        hour_of_day=int(spec.schedule.daily_at[:2]),
        minute_of_hour=int(spec.schedule.daily_at[3:]),
        default_status=schedule_status,
        description=f"Yesterday's {spec.name} partition: ingest, features, predictions.",
    )
    retrain = dg.ScheduleDefinition(
        name=f"{spec.name}_retrain_schedule",
        job=training_job,
        cron_schedule=spec.schedule.retrain_cron,
        execution_timezone=spec.schedule.timezone,
        default_status=schedule_status,
        description=f"Retrain {spec.name}; the champion moves only if the challenger passes its gates.",
    )

    @dg.sensor(
        name=f"{spec.name}_landed_data_sensor",
        job=daily_job,
        minimum_interval_seconds=settings.sensor_interval(30),
        default_status=default_status(),
        description=f"Runs new or changed {spec.name} source days (by content hash); consecutive days share one run. "
        "Entries that cannot be a day's data are reported once and left where they are.",
    )
    def landed_data(
        context: dg.SensorEvaluationContext, source: EventSource, lake: DataLake, alerts: AlertResource
    ) -> dg.SensorResult:
        seen = _LandedCursor.parse(context.cursor)
        landed, rejected = _landed_days(spec, source, seen.days)
        partition_keys = partitions_def.get_partition_keys()
        in_progress = _next_day(partition_keys[-1]) if partition_keys else spec.start_date.isoformat()
        for day in sorted(set(landed) - set(partition_keys)):
            del landed[day]  # not in the cursor: the in-progress day runs once its partition exists
            if day != in_progress:
                rejected[_entry_name(spec, day)] = (
                    f"day {day} is outside the partitions {partition_keys[0]}..{partition_keys[-1]}" if partition_keys
                    else f"no partition exists yet (start_date {spec.start_date})"
                )
        _report_rejected(context, alerts, spec, {name: why for name, why in rejected.items() if seen.reported.get(name) != why})
        adopted = _already_in_lake(spec, source, lake, landed) if context.cursor is None else set()
        before = {day: digest for day, (_, digest) in seen.days.items()}
        changed = [day for day, (_, digest) in landed.items() if day not in adopted and before.get(day) != digest]
        changed += _windows_containing(spec, [day for day in changed if day in before], before, changed)
        # until a first champion exists there is nothing to score with: ingest and build features only
        selection = None if lake.has_json(keys.champion(spec)) else [keys.raw_events(spec), keys.features(spec)]
        requests = [
            range_run_request(days, asset_selection=selection, run_key=_run_key(
                days, [landed[day][1] for day in days], [before.get(day, "") for day in days]))
            for days in contiguous_ranges(changed, partition_keys)
        ]
        cursor = _LandedCursor(days=landed, reported=rejected).dump()
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        return dg.SensorResult(skip_reason=f"no new or changed {spec.name} days"
                               + (f"; not processed: {sorted(rejected)}" if rejected else ""), cursor=cursor)

    @dg.sensor(
        name=f"{spec.name}_new_champion_sensor",
        job=rescore_job,
        minimum_interval_seconds=settings.sensor_interval(30),
        default_status=default_status(),
        description=f"A new {spec.name} champion rescores the last {spec.schedule.rescore_days} feature days.",
    )
    def new_champion(context: dg.SensorEvaluationContext, lake: DataLake) -> dg.SensorResult | dg.SkipReason:
        records = context.instance.fetch_materializations(keys.champion(spec), limit=1).records
        if not records or str(records[0].storage_id) == context.cursor:
            return dg.SkipReason("no new champion")
        event = records[0]
        days = lake.existing_partitions(keys.features(spec))[-spec.schedule.rescore_days :]
        if not days:
            return dg.SensorResult(skip_reason="new champion, but no feature days to rescore", cursor=str(event.storage_id))
        scored = context.instance.event_log_storage.get_latest_storage_id_by_partition(
            keys.predictions(spec), dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(days)
        )
        if all(scored.get(day, 0) > event.storage_id for day in days):  # e.g. the demo: trained, then scored them
            return dg.SensorResult(skip_reason=f"the last {len(days)} days were scored after the latest champion change",
                                   cursor=str(event.storage_id))
        request = range_run_request(days, run_key=f"champion-{event.storage_id}")
        return dg.SensorResult(run_requests=[request], cursor=str(event.storage_id))

    @dg.sensor(
        name=f"{spec.name}_drift_retrain_sensor",
        job=training_job,
        minimum_interval_seconds=settings.sensor_interval(60),
        default_status=default_status(),
        description=f"Retrain {spec.name} once per drift episode: when the PSI of a feature or of the scores stays "
        f"above {spec.drift.psi_threshold} on {spec.drift.consecutive_days} consecutive days.",
    )
    def drift_retrain(context: dg.SensorEvaluationContext, lake: DataLake) -> dg.SensorResult | dg.SkipReason:
        worst_psi = _recent_worst_psi(spec, lake)
        if not worst_psi:
            return dg.SkipReason(f"no {spec.name}/drift partitions yet")
        episode = drift_episode(worst_psi, spec.drift.psi_threshold)
        retrained_for = json.loads(context.cursor)["episode"] if context.cursor else None
        if not episode:  # a calm newest day ends any episode: the next one retrains again
            return dg.SensorResult(skip_reason=f"newest drift day within PSI {spec.drift.psi_threshold}",
                                   cursor=json.dumps({"episode": None}))
        since = f"{episode[0]}..{episode[-1]}"
        if len(episode) < spec.drift.consecutive_days:
            return dg.SkipReason(f"PSI above {spec.drift.psi_threshold} on {len(episode)} day(s) ({since}); "
                                 f"retraining after {spec.drift.consecutive_days}")
        if retrained_for == episode[0]:
            return dg.SkipReason(f"retraining already requested for the drift episode {since}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(
                run_key=f"drift-episode-{episode[0]}",
                tags={"ml_platform/trigger": "drift", "ml_platform/drift_days": since},
            )],
            cursor=json.dumps({"episode": episode[0]}),
        )

    return [daily, retrain], [landed_data, new_champion, drift_retrain]


def build_automation_condition_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates the assets' automation conditions (features following raw events) for every use case."""
    return dg.AutomationConditionSensorDefinition(
        "automation_conditions", target=dg.AssetSelection.all(), default_status=default_status(),
        minimum_interval_seconds=settings.sensor_interval(30),
    )


@dataclass
class _LandedCursor:
    days: dict[str, tuple[str, str]] = field(default_factory=dict)  # day -> (cheap signature, content digest)
    reported: dict[str, str] = field(default_factory=dict)  # rejected entry -> reason already reported

    @classmethod
    def parse(cls, cursor: str | None) -> "_LandedCursor":
        state = json.loads(cursor) if cursor else {}
        return cls({day: tuple(pair) for day, pair in state.get("days", {}).items()}, state.get("reported", {}))

    def dump(self) -> str:
        return json.dumps({"days": self.days, "reported": self.reported}, sort_keys=True)


def _landed_days(
    spec: UseCaseSpec, source: EventSource, known: dict[str, tuple[str, str]]
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Each landed day's (signature, content digest), hashing only files whose signature changed; and the
    entries that cannot be a day's data, with the reason. For a table, the day's version and its hash."""
    if not isinstance(spec.source, FileSourceSpec):
        versions = source.available_days(spec).items()
        return {day: (version, hashlib.sha256(version.encode()).hexdigest()) for day, version in versions}, {}
    scan = source.scan_landing(spec.source)
    landed = {}
    for day, path in scan.files.items():
        signature, previous = file_signature(path), known.get(day)
        landed[day] = (signature, previous[1] if previous and previous[0] == signature else content_digest(path))
    return landed, scan.rejected


def _windows_containing(spec: UseCaseSpec, corrected: list[str], processed: dict[str, str], changed: list[str]) -> list[str]:
    """Processed days after a corrected one whose feature windows contain it: they are rerun with it (features
    declare raw day D as their input, so Dagster itself would not see them as stale)."""
    followers = {
        later
        for day in corrected
        for offset in range(1, spec.lookback_days)
        if (later := (dt.date.fromisoformat(day) + dt.timedelta(days=offset)).isoformat()) in processed
    }
    return sorted(followers - set(changed))


def _next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _entry_name(spec: UseCaseSpec, day: str) -> str:
    if isinstance(spec.source, FileSourceSpec):
        return f"{day}.{spec.source.format}"
    return f"{spec.source.table} rows of {day}"


def _report_rejected(
    context: dg.SensorEvaluationContext, alerts: AlertResource, spec: UseCaseSpec, new: dict[str, str]
) -> None:
    """Say once, in the tick log and to the alert sinks, which landed entries will not be processed."""
    if not new:
        return
    lines = [f"{name}: {why}" for name, why in sorted(new.items())]
    context.log.warning(f"{spec.name}: not processing {len(new)} landed entr(y/ies), left in place:\n" + "\n".join(lines))
    alerts.send(
        "landing_rejected", f"{spec.name}: {len(new)} landed entr(y/ies) cannot be processed", "\n".join(lines),
        severity="warning", details={"use_case": spec.name, "rejected": new},
    )


def _already_in_lake(
    spec: UseCaseSpec, source: EventSource, lake: DataLake, landed: dict[str, tuple[str, str]]
) -> set[str]:
    """On a sensor's first tick, days whose raw partition was written after the source last changed:
    a new Dagster instance (or a move to Postgres storage) must not reprocess a year of history."""
    written = lake.modified_times(keys.raw_events(spec))
    if not isinstance(spec.source, FileSourceSpec):
        return set(written) & set(landed)
    directory = source.landing_dir(spec.source)
    return {
        day for day in landed
        if day in written and written[day] >= (directory / _entry_name(spec, day)).stat().st_mtime
    }


def _recent_worst_psi(spec: UseCaseSpec, lake: DataLake) -> dict[str, float]:
    """Largest PSI (any feature or the scores) of each of the newest drift days."""
    days = lake.existing_partitions(keys.drift(spec))[-DRIFT_LOOKBACK_DAYS:]
    if not days:
        return {}
    drift = lake.read(keys.drift(spec), days, columns=["day", "psi"])
    return drift.groupby("day")["psi"].max().to_dict()


def drift_episode(worst_psi: dict[str, float], threshold: float) -> list[str]:
    """The run of consecutive calendar days, ending on the newest day, whose PSI exceeds the threshold."""
    episode: list[str] = []
    for day in sorted(worst_psi, reverse=True):
        follows = not episode or dt.date.fromisoformat(day) == dt.date.fromisoformat(episode[0]) - dt.timedelta(days=1)
        if not follows or worst_psi[day] <= threshold:
            break
        episode.insert(0, day)
    return episode
