"""Shadow challengers: registered versions that score every live day beside the champion, and how they compare.

`<uc>/shadow_predictions` (day D, when D's features land): the newest registered version that is not
champion, and any `monitoring.shadow_versions`, score D's features through the same function as
`<uc>/predictions` (`steps.score`), one `model_version` per row; no such version: an empty day, with a note.

`<uc>/shadow_comparison` (day D, when D's labels mature: raw days D..D+horizon): each shadow version and the
champion that scored D, paired on the same rows with their matured labels, and the promotion's own test
(`comparison.paired_bootstrap_test` of `gates.compare_metric`) on the day and on every stored day the same pair
has (cumulative). A separate asset rather than a re-materialization of shadow_predictions, because the two
happen days apart (scoring the day it lands, judging `horizon` days later) and each is backfilled on its own.
Its partition stores the paired labelled rows, so the cumulative test reads earlier days from the lake.

With `gates.live_evidence_days: N > 0`, a challenger that passed its holdout gates waits here (the champion asset
does not promote it) until the live-evidence sensor sees it significantly better over >= N live days.
"""

import datetime as dt
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.conventions import code_version, daily_conventions
from ml_platform.features.compute import DAY
from ml_platform.io.parquet_lake import DataLake
from ml_platform.models.challenger import THRESHOLD_TAG
from ml_platform.models.comparison import ImprovementTest, paired_bootstrap_test
from ml_platform.models.registry import registered_version
from ml_platform.monitoring.realized import LABEL, NAIVE, join_labels, labels_complete, read_label_events
from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.spec import LOWER_IS_BETTER, UseCaseSpec

SHADOW, CHAMPION_SIDE = "shadow", "champion"


def shadow_assets(spec: UseCaseSpec, partitions_def: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    with (
        warnings.catch_warnings()
    ):  # beta, knowingly: a single-run backfill policy on @asset (every CLI call loads them)
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [_shadow_predictions(spec, partitions_def), _shadow_comparison(spec, partitions_def)]


def versions_in_shadow(spec: UseCaseSpec, mlflow: MlflowResource) -> tuple[str | None, list[str]]:
    """The champion's version and the versions that score in shadow: the newest non-champion and the spec's list."""
    champion = mlflow.version_by_alias(spec.name, CHAMPION)
    champion_version = str(champion.version) if champion else None
    existing = sorted(int(v.version) for v in mlflow.client().search_model_versions(f"name='{spec.name}'"))
    missing = [v for v in spec.monitoring.shadow_versions if v not in existing]
    if missing:
        raise dg.Failure(
            f"{spec.name}: spec field monitoring.shadow_versions lists version(s) {missing} that are not "
            f"registered; expected some of {existing or 'none'}",
            allow_retries=False,
        )
    challengers = [v for v in existing if str(v) != champion_version]
    chosen = {*challengers[-1:], *spec.monitoring.shadow_versions} - (
        {int(champion_version)} if champion_version else set()
    )
    return champion_version, [str(v) for v in sorted(chosen)]


def _shadow_predictions(spec: UseCaseSpec, partitions_def: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    key, features_key = keys.shadow_predictions(spec), keys.features(spec)

    @dg.asset(
        key=key,
        description=f"{spec.name}: every {spec.subject} of the day scored by each shadow version (the newest "
        f"registered version that is not '{CHAMPION}', and monitoring.shadow_versions), exactly as predictions scores; "
        "compared with the champion in shadow_comparison once the labels mature.",
        deps=[features_key],
        automation_condition=dg.AutomationCondition.eager(),
        group_name=spec.name,
        owners=spec.owners,
        kinds={"parquet", "mlflow"},
        **daily_conventions(spec, "shadow_predictions"),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def shadow_predictions(
        context: dg.AssetExecutionContext, lake: DataLake, mlflow: MlflowResource
    ) -> dg.MaterializeResult[Any]:
        champion, versions = versions_in_shadow(spec, mlflow)
        days = context.partition_keys
        scored: dict[str, list[pd.DataFrame]] = {day: [] for day in days}
        for version in versions:
            model = mlflow.load_model(spec.name, version)
            for result in steps.score(model, version, lake, features_key, spec, days):
                if not result.passed or result.frame is None:
                    problems = "; ".join(o.message for o in result.outcomes if not o.passed)
                    raise dg.Failure(f"{key.to_user_string()} {result.day}: version {version} not scored: {problems}")
                scored[result.day].append(result.frame)
        note = (
            None
            if versions
            else (
                f"no version to shadow: none is registered besides the champion (v{champion})"
                if champion
                else "no version to shadow: no registered version"
            )
        )
        for day in days:
            frame = (
                pd.concat(scored[day], ignore_index=True) if scored[day] else _no_scores(spec, lake, features_key, day)
            )
            lake.write_partition(key, day, frame)
            context.add_asset_metadata(
                {
                    "rows": len(frame),
                    "dagster/row_count": dg.MetadataValue.int(len(frame)),
                    **({"note": note} if note else {}),
                },
                partition_key=day,
            )
        return dg.MaterializeResult(
            metadata={"shadow_versions": ", ".join(versions) or "none", "champion_version": champion or "none"}
        )

    return shadow_predictions


def _no_scores(spec: UseCaseSpec, lake: DataLake, features_key: dg.AssetKey, day: str) -> pd.DataFrame:
    """An empty day with predictions' columns (from the day's features: no model is called on no rows)."""
    features = lake.read(features_key, [day], missing_ok=True)
    return steps.score_frame(None, features.iloc[:0], spec, "none")


@dataclass(frozen=True)
class LiveComparison:
    """One shadow version against the champion on live rows: the day's test and the cumulative one."""

    shadow_version: str
    champion_version: str
    rows: int
    day: ImprovementTest | None  # None when no scored row of the day has a label
    cumulative: ImprovementTest | None
    days: int  # live days with labels in the cumulative test


def _shadow_comparison(spec: UseCaseSpec, partitions_def: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    key, metric, horizon = keys.shadow_comparison(spec), spec.gates.compare_metric, spec.label.horizon_days
    shadow_key, predictions_key, raw_key = keys.shadow_predictions(spec), keys.predictions(spec), keys.raw_events(spec)
    # Eager, but over the last horizon days too: a day's labels mature `horizon` days after it (plain eager only
    # looks at the newest day); the missing later raw days keep it waiting until they land.
    labels_matured = (
        dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=horizon + 2))
        & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("labels_matured")

    @dg.asset(
        key=key,
        description=f"{spec.name}: each shadow version against the champion on the same live rows once their labels "
        f"mature ({horizon} day(s) later): {metric} difference and p-value of the promotion's one-sided paired "
        "bootstrap, for the day and cumulatively over the days the same pair scored (metadata live_*; the Plots tab "
        "draws them).",
        deps=[
            shadow_key,
            predictions_key,
            dg.AssetDep(raw_key, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=0, end_offset=horizon)),
        ],
        automation_condition=labels_matured,
        group_name=spec.name,
        owners=spec.owners,
        kinds={"parquet", "pandas"},
        code_version=code_version(spec, "shadow_comparison"),  # no freshness: it lags the newest day by the horizon
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def shadow_comparison(context: dg.AssetExecutionContext, lake: DataLake, mlflow: MlflowResource) -> Iterator[Any]:
        raw_days = set(lake.existing_partitions(raw_key))
        thresholds: dict[str, float | None] = {}
        recorded: dict[str, dict[str, Any]] = {}
        immature = [day for day in context.partition_keys if not labels_complete(spec, day, raw_days)]
        for day in sorted(set(context.partition_keys) - set(immature)):
            paired = paired_rows(spec, lake, day)
            lake.write_partition(key, day, paired)
            comparisons = [
                _compare(spec, lake, key, paired, version, thresholds, mlflow)
                for version in sorted(paired["shadow_version"].unique(), key=int)
            ]
            recorded[day] = _day_metadata(spec, day, len(paired), comparisons)
        if (
            immature
        ):  # a backfill reaching the newest days: the compared days are recorded, the step fails naming the rest
            for day, metadata in recorded.items():
                yield dg.AssetMaterialization(key, partition=day, metadata=metadata)
            raise dg.Failure(
                f"{key.to_user_string()}: labels not mature for {len(immature)} day(s) {immature[0]}.."
                f"{immature[-1]} (the raw days through {horizon} day(s) later are not all materialized); "
                f"{len(recorded)} day(s) compared",
                allow_retries=False,
            )
        for day, metadata in recorded.items():
            context.add_asset_metadata(metadata, partition_key=day)
        yield dg.MaterializeResult()

    return shadow_comparison


def paired_rows(spec: UseCaseSpec, lake: DataLake, day: str) -> pd.DataFrame:
    """Day D's rows scored by both the champion (predictions) and each shadow version, with their matured labels."""
    on = [*spec.key_columns, DAY]
    shadow = lake.read(keys.shadow_predictions(spec), [day], missing_ok=True)
    champion = lake.read(keys.predictions(spec), [day], missing_ok=True)
    events = read_label_events(lake, spec, keys.raw_events(spec), [day])
    features = lake.read(keys.features(spec), [day]) if spec.label.naive_feature else None
    labelled = join_labels(spec, champion, events, features)
    columns = ["score", "model_version", *([steps.PREDICTED_CLASS] if spec.label.task == "multiclass" else [])]
    if shadow.empty:  # nothing to shadow that day, or shadow_predictions not materialized for it
        shadow = pd.DataFrame(columns=[*on, *columns])
    pairs = labelled.rename(columns={c: f"{CHAMPION_SIDE}_{c}" for c in columns}).merge(
        shadow[[*on, *columns]].rename(columns={c: f"{SHADOW}_{c}" for c in columns}), on=on, how="inner"
    )
    pairs = pairs.rename(
        columns={f"{CHAMPION_SIDE}_model_version": "champion_version", f"{SHADOW}_model_version": "shadow_version"}
    )
    keep = [
        *on,
        LABEL,
        *([NAIVE] if NAIVE in pairs else []),
        "champion_version",
        "shadow_version",
        *[f"{side}_{c}" for side in (CHAMPION_SIDE, SHADOW) for c in columns if c != "model_version"],
    ]
    pairs = pairs.loc[pairs["shadow_version"] != pairs["champion_version"], keep]  # a shadow that became champion
    if spec.label.task != "multiclass":
        pairs[LABEL] = pairs[LABEL].astype("float64")
    return pairs


def _compare(
    spec: UseCaseSpec,
    lake: DataLake,
    key: dg.AssetKey,
    day_rows: pd.DataFrame,
    version: str,
    thresholds: dict[str, float | None],
    mlflow: MlflowResource,
) -> LiveComparison:
    """The day's and the cumulative test of `version` against the day's champion, on their labelled paired rows."""
    mine = day_rows[day_rows["shadow_version"] == version]
    champion = str(mine["champion_version"].iloc[0])
    day = str(mine[DAY].iloc[0])
    earlier = [d for d in lake.existing_partitions(key) if d <= day]
    history = lake.read(key, earlier)
    history = history[(history["shadow_version"] == version) & (history["champion_version"] == champion)]
    for v in (version, champion):
        if v not in thresholds:
            tag = registered_version(mlflow, spec.name, v).tags.get(THRESHOLD_TAG)
            thresholds[v] = float(tag) if tag is not None else None
    history = history[history[LABEL].notna()]
    return LiveComparison(
        shadow_version=version,
        champion_version=champion,
        rows=len(mine),
        day=paired_test(spec, mine[mine[LABEL].notna()], thresholds[version], thresholds[champion]),
        cumulative=paired_test(spec, history, thresholds[version], thresholds[champion]),
        days=int(history[DAY].nunique()),
    )


def paired_test(
    spec: UseCaseSpec,
    rows: pd.DataFrame,
    shadow_threshold: float | None,
    champion_threshold: float | None,
) -> ImprovementTest | None:
    """The promotion's paired bootstrap (shadow as challenger) on labelled paired rows; None without any."""
    if rows.empty:
        return None
    gates = spec.gates
    if spec.label.task == "multiclass":
        codes = {name: index for index, name in enumerate(spec.classes)}
        labels = rows[LABEL].map(codes).to_numpy(dtype=np.int64)
        shadow, champion = (
            np.eye(len(spec.classes))[rows[f"{side}_{steps.PREDICTED_CLASS}"].map(codes).to_numpy(dtype=np.int64)]
            for side in (SHADOW, CHAMPION_SIDE)
        )
    else:
        labels = rows[LABEL].to_numpy(dtype=float)
        shadow, champion = (rows[f"{side}_score"].to_numpy(dtype=float) for side in (SHADOW, CHAMPION_SIDE))
    naive = rows[NAIVE].to_numpy(dtype=float) if NAIVE in rows else None
    return paired_bootstrap_test(
        gates.compare_metric,
        gates.compare_metric in LOWER_IS_BETTER,
        labels,
        naive,
        (shadow, shadow_threshold),
        (champion, champion_threshold),
        resamples=gates.bootstrap_resamples,
        alpha=gates.significance_level,
        seed=spec.training.seed,
    )


def _day_metadata(spec: UseCaseSpec, day: str, rows: int, comparisons: Sequence[LiveComparison]) -> dict[str, Any]:
    """Numbers for the Plots tab (the newest shadow version's), and every version's in a table."""
    metric = spec.gates.compare_metric
    if not comparisons:
        return {"rows": rows, "note": f"no shadow version scored {day}: nothing to compare"}
    newest = comparisons[-1]
    metadata: dict[str, Any] = {
        "shadow_version": newest.shadow_version,
        "champion_version": newest.champion_version,
        "rows": rows,
        "dagster/row_count": dg.MetadataValue.int(rows),
    }
    if newest.day:
        metadata.update(
            {f"day_delta_{metric}": float(newest.day.improvement), "day_p_value": float(newest.day.p_value)}
        )
    if newest.cumulative:
        metadata.update(
            {
                f"live_delta_{metric}": float(newest.cumulative.improvement),
                "live_p_value": float(newest.cumulative.p_value),
                "live_days": int(newest.days),
                f"live_shadow_{metric}": float(newest.cumulative.challenger),
                f"live_champion_{metric}": float(newest.cumulative.champion),
            }
        )
    metadata["versions"] = dg.MetadataValue.md(_table(metric, comparisons))
    return metadata


def _table(metric: str, comparisons: Sequence[LiveComparison]) -> str:
    lines = [
        f"| shadow | champion | rows | day {metric} delta (p) | live {metric} delta (p) | live days |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        day = f"{c.day.improvement:+.4f} ({c.day.p_value:.3f})" if c.day else "no labels"
        live = f"{c.cumulative.improvement:+.4f} ({c.cumulative.p_value:.3f})" if c.cumulative else "no labels"
        lines.append(f"| v{c.shadow_version} | v{c.champion_version} | {c.rows} | {day} | {live} | {c.days} |")
    return "\n".join(lines)


def latest_live_comparison(instance: dg.DagsterInstance, spec: UseCaseSpec) -> tuple[str, dict[str, Any]] | None:
    """The newest compared day and its metadata (live_*, shadow and champion versions, or a note); None before any.
    What the live-evidence sensor, `ml-platform summary` and the Prometheus exporter read."""
    key = keys.shadow_comparison(spec)
    days = sorted(instance.get_materialized_partitions(key))
    if not days:
        return None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[days[-1]]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:  # wiped between the two reads
        return None
    return days[-1], {name: value.value for name, value in materialization.metadata.items()}


def build_live_evidence_sensor(
    spec: UseCaseSpec, default_status: dg.DefaultSensorStatus, interval_s: int
) -> dg.SensorDefinition:
    """With `gates.live_evidence_days: N`, requests the audited promote job for a shadow version that passed its
    holdout gates once its cumulative live comparison with the current champion covers >= N days and is
    significantly better (the newest compared day's record); one request per version and champion."""
    key, metric, gates = keys.shadow_comparison(spec), spec.gates.compare_metric, spec.gates

    @dg.sensor(
        name=f"{spec.name}_live_evidence_sensor",
        job_name=f"{spec.name}_promote",
        minimum_interval_seconds=interval_s,
        default_status=default_status,
        description=f"Promotes a {spec.name} challenger waiting in shadow after {gates.live_evidence_days} live day(s) "
        f"of significantly better paired {metric} (p < {gates.significance_level}).",
    )
    def live_evidence(context: dg.SensorEvaluationContext, mlflow: MlflowResource) -> dg.RunRequest | dg.SkipReason:
        newest = latest_live_comparison(context.instance, spec)
        if newest is None:
            return dg.SkipReason(f"no {key.to_user_string()} yet")
        day, record = newest
        if "live_days" not in record:
            return dg.SkipReason(f"{day}: no live comparison ({record.get('note', 'no labelled paired rows')})")
        version, champion, live_days = (
            str(record["shadow_version"]),
            str(record["champion_version"]),
            record["live_days"],
        )
        delta, p_value = float(record[f"live_delta_{metric}"]), float(record["live_p_value"])
        current = mlflow.version_by_alias(spec.name, CHAMPION)
        if current is None or str(current.version) != champion:
            return dg.SkipReason(f"the live comparison of v{version} is against v{champion}, no longer champion")
        if registered_version(mlflow, spec.name, version).tags.get("gates") != "passed":
            return dg.SkipReason(f"v{version} did not pass its holdout gates: it only shadows")
        if live_days < gates.live_evidence_days or not (delta > 0 and p_value < gates.significance_level):
            return dg.SkipReason(
                f"v{version} vs v{champion} over {live_days} live day(s): {metric} {delta:+.4f}, "
                f"p = {p_value:.3f}; needs {gates.live_evidence_days} day(s) and p < {gates.significance_level}"
            )
        reason = (
            f"live evidence: {metric} {delta:+.4f} over champion v{champion} on {live_days} live day(s) "
            f"through {day}, paired bootstrap p = {p_value:.3f} (gates.live_evidence_days {gates.live_evidence_days})"
        )
        return dg.RunRequest(
            run_key=f"live-evidence-v{version}-over-v{champion}",
            run_config={
                "ops": {
                    f"{spec.name}__promote_champion": {
                        "config": {
                            "version": version,
                            "reason": reason,
                            "requested_by": f"{spec.name}_live_evidence_sensor",
                            "live_evidence": True,
                        }
                    }
                }
            },
            tags={"ml_platform/use_case": spec.name},
        )

    return live_evidence


def shadow_summary(instance: dg.DagsterInstance, spec: UseCaseSpec) -> list[str]:
    """`ml-platform summary`'s lines: which versions score in shadow, and the newest live comparison."""
    event = instance.get_latest_materialization_event(keys.shadow_predictions(spec))
    if event is None or event.asset_materialization is None:
        return ["  shadow: not scored yet"]
    scored = event.asset_materialization.metadata.get("shadow_versions")
    versions = scored.value if scored else "none"
    lines = [
        f"  shadow: version(s) {versions} scoring live days beside the champion"
        if versions != "none"
        else "  shadow: no registered version besides the champion to score live days"
    ]
    newest = latest_live_comparison(instance, spec)
    metric = spec.gates.compare_metric
    if newest is None:
        return [
            *lines,
            f"  live comparison: none yet ({keys.shadow_comparison(spec).to_user_string()} not materialized)",
        ]
    day, record = newest
    if "live_days" not in record:
        return [*lines, f"  live comparison {day}: {record.get('note', 'no labelled paired rows')}"]
    waiting = spec.gates.live_evidence_days
    return [
        *lines,
        f"  live comparison through {day}: v{record['shadow_version']} vs champion v{record['champion_version']} "
        f"{metric} {record[f'live_delta_{metric}']:+.4f} (p = {record['live_p_value']:.3f}) over {record['live_days']} "
        f"day(s)" + (f"; promotion needs {waiting} day(s) significantly better" if waiting else ""),
    ]
