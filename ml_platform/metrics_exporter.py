"""Prometheus metrics of the platform (Dagster OSS has no exporter, dagster#4480).

`ml-platform metrics --port 9108` serves `/metrics`, computed at each scrape
from the Dagster instance, the lake and MLflow: run counts by status, per-asset
partition counts and freshness, recent gate failures and warnings, each
champion's version and holdout metrics, the newest day's worst feature drift, and the champion's live
performance (realized on the newest day whose labels matured, estimated on the newest scored day).

A failed evaluation counts as a failure when its severity is ERROR (the gate
blocked its day) and as a warning when it is WARN (a check set to `severity:
warn`, or drift's measurement: the day went through). They are two metrics,
not one with a severity label, so an alert on `ml_platform_check_recent_failures
> 0` fires on blocked days only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from ml_platform.assets import keys
from ml_platform.spec import UseCaseSpec

PARTITIONED_STAGES = ("raw_events", "features", "predictions", "drift", "performance")
RECENT_CHECK_EVALUATIONS = 200
PERFORMANCE_LOOKBACK_DAYS = 60  # the newest matured day lies a label horizon back


class PlatformCollector:
    """A prometheus_client collector; every scrape reads the current state, nothing is cached."""

    def __init__(self, instance: Any, specs: list[UseCaseSpec], defs: Any) -> None:
        self.instance, self.specs = instance, specs
        self.lake, self.mlflow = defs.resources["lake"], defs.resources["mlflow"]
        self.checks_by_asset: dict[Any, list[Any]] = {}
        for check_key in sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda k: k.to_user_string()):
            self.checks_by_asset.setdefault(check_key.asset_key, []).append(check_key)

    def collect(self) -> Iterator[Any]:
        from dagster import DagsterRunStatus, RunsFilter
        from prometheus_client.core import GaugeMetricFamily

        runs = GaugeMetricFamily("ml_platform_runs", "Dagster runs by status", labels=["status"])
        for status in DagsterRunStatus:
            runs.add_metric([status.value], self.instance.get_runs_count(RunsFilter(statuses=[status])))
        yield runs

        partitions = GaugeMetricFamily(
            "ml_platform_materialized_partitions", "Materialized daily partitions", labels=["use_case", "asset"]
        )
        freshness = GaugeMetricFamily(
            "ml_platform_latest_partition_timestamp_seconds",
            "Start of the newest materialized partition (UTC)",
            labels=["use_case", "asset"],
        )
        failures = GaugeMetricFamily(
            "ml_platform_check_recent_failures",
            f"Failed evaluations (severity ERROR) among each check's last {RECENT_CHECK_EVALUATIONS}",
            labels=["use_case", "asset", "check"],
        )
        warnings = GaugeMetricFamily(
            "ml_platform_check_recent_warnings",
            f"Failed evaluations with severity WARN (the day went through) among each check's "
            f"last {RECENT_CHECK_EVALUATIONS}",
            labels=["use_case", "asset", "check"],
        )
        champion = GaugeMetricFamily(
            "ml_platform_champion_version", "Registered version at alias champion", labels=["use_case"]
        )
        champion_metrics = GaugeMetricFamily(
            "ml_platform_champion_holdout_metric", "Champion's holdout metrics", labels=["use_case", "metric"]
        )
        drift = GaugeMetricFamily(
            "ml_platform_max_feature_psi",
            "Worst PSI (any feature or the scores) of the newest drift partition",
            labels=["use_case", "day"],
        )
        for spec in self.specs:
            for stage in PARTITIONED_STAGES:
                key = keys.of_stage(spec, stage)
                materialized = self.instance.get_materialized_partitions(key)
                partitions.add_metric([spec.name, stage], len(materialized))
                if materialized:
                    newest = dt.datetime.fromisoformat(max(materialized)).replace(tzinfo=dt.UTC)
                    freshness.add_metric([spec.name, stage], newest.timestamp())
            for check_key, failed, warned in self._recent_check_failures(spec):
                labels = [spec.name, check_key.asset_key.path[-1], check_key.name]
                failures.add_metric(labels, failed)
                warnings.add_metric(labels, warned)
            version = self.mlflow.version_by_alias(spec.name, "champion")
            if version is not None:
                champion.add_metric([spec.name], float(version.version))
                for name, value in self.mlflow.client().get_run(version.run_id).data.metrics.items():
                    champion_metrics.add_metric([spec.name, name.removeprefix("holdout_")], value)
            drift_days = self.lake.existing_partitions(keys.drift(spec))
            newest_drift = self.lake.read(keys.drift(spec), drift_days[-1:]) if drift_days else None
            if newest_drift is not None and not newest_drift.empty:  # a warm-up day has no measurements
                drift.add_metric([spec.name, drift_days[-1]], float(newest_drift["psi"].max()))
        yield from (partitions, freshness, failures, warnings, champion, champion_metrics, drift)
        yield from self._shadow_gauges()
        yield from self._performance_gauges()

    def _performance_gauges(self) -> Iterator[Any]:
        """The champion's realized metrics on the newest day whose labels matured, and its estimated metrics on the
        newest scored day (`<uc>/performance`)."""
        from prometheus_client.core import GaugeMetricFamily

        from ml_platform.assets.performance import newest_measured

        labels = ["use_case", "metric", "day", "champion_version"]
        gauges = {
            "realized": GaugeMetricFamily(
                "ml_platform_realized_metric",
                "Champion's metric on the newest scored day whose labels matured",
                labels=labels,
            ),
            "estimated": GaugeMetricFamily(
                "ml_platform_estimated_metric",
                "Champion's metric estimated from the scores of the newest scored day",
                labels=labels,
            ),
        }
        coverage = GaugeMetricFamily(
            "ml_platform_label_coverage",
            "Share of the newest matured day's scored rows with a known label",
            labels=["use_case", "day"],
        )
        for spec in self.specs:
            for source, newest in newest_measured(self.lake, spec, PERFORMANCE_LOOKBACK_DAYS).items():
                gauge = gauges[source]
                for column in [c for c in newest.index if c.startswith(f"{source}_")]:
                    if newest[column] == newest[column]:  # not NaN
                        gauge.add_metric(
                            [
                                spec.name,
                                column.removeprefix(f"{source}_"),
                                newest["day"],
                                str(newest["champion_version"]),
                            ],
                            float(newest[column]),
                        )
                if source == "realized" and "label_coverage" in newest:
                    coverage.add_metric([spec.name, newest["day"]], float(newest["label_coverage"]))
        yield from (*gauges.values(), coverage)

    def _shadow_gauges(self) -> Iterator[Any]:
        """The newest live comparison of each use case's shadow version with its champion (`<uc>/shadow_comparison`)."""
        from prometheus_client.core import GaugeMetricFamily

        from ml_platform.assets.shadow import latest_live_comparison

        labels = ["use_case", "shadow_version", "champion_version"]
        delta = GaugeMetricFamily(
            "ml_platform_shadow_live_delta",
            "Shadow minus champion compare metric on live labelled rows, cumulative (positive: the shadow is better)",
            labels=[*labels, "metric"],
        )
        p_value = GaugeMetricFamily(
            "ml_platform_shadow_live_p_value", "One-sided paired bootstrap p-value of that delta", labels=labels
        )
        days = GaugeMetricFamily(
            "ml_platform_shadow_live_days", "Live days with labels in that comparison", labels=labels
        )
        for spec in self.specs:
            newest = latest_live_comparison(self.instance, spec)
            if newest is None or "live_days" not in newest[1]:
                continue
            record, metric = newest[1], spec.gates.compare_metric
            versions = [spec.name, str(record["shadow_version"]), str(record["champion_version"])]
            delta.add_metric([*versions, metric], float(record[f"live_delta_{metric}"]))
            p_value.add_metric(versions, float(record["live_p_value"]))
            days.add_metric(versions, float(record["live_days"]))
        yield from (delta, p_value, days)

    def _recent_check_failures(self, spec: UseCaseSpec) -> Iterator[tuple[Any, int, int]]:
        """(check, failures, warnings) among each check's recent evaluations."""
        from dagster import AssetCheckSeverity

        from ml_platform.dagster_internals import AssetCheckExecutionRecordStatus

        storage = self.instance.event_log_storage
        for stage in (*PARTITIONED_STAGES, "model"):
            key = keys.of_stage(spec, stage)
            for check_key in self.checks_by_asset.get(key, []):
                history = storage.get_asset_check_execution_history(check_key, limit=RECENT_CHECK_EVALUATIONS)
                failed = [r for r in history if r.status == AssetCheckExecutionRecordStatus.FAILED]
                warned = sum(
                    r.event is not None
                    and r.event.dagster_event.event_specific_data.severity == AssetCheckSeverity.WARN
                    for r in failed
                )
                yield check_key, len(failed) - warned, warned


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics until interrupted."""
    import threading

    import dagster as dg
    from prometheus_client import CollectorRegistry, start_http_server

    from ml_platform.definitions import build_definitions, load_specs

    specs = load_specs()
    registry = CollectorRegistry()
    registry.register(PlatformCollector(dg.DagsterInstance.get(), specs, build_definitions(specs)))
    start_http_server(port, addr=host, registry=registry)
    print(f"serving Prometheus metrics on http://{host}:{port}/metrics", flush=True)
    threading.Event().wait()
