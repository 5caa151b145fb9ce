"""The conventions a Dagster user expects on the platform's assets: `dagster/row_count` on every daily
materialization and the training set, a `code_version` that changes with exactly the spec fields an
asset reads, and a freshness policy on the daily assets that the freshness daemon evaluates and the
UI shows (a late day FAIL, an on-time one PASS).

One small news use case (every daily asset, the report included) is materialized once on a
DAGSTER_HOME with the repository's dagster.yaml, in process; the freshness test then starts the real
webserver and daemon on that home and asks what the asset page asks.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from demo.generators.news import generate_news_events
from demo.landing import land_days
from ml_platform.assets import keys
from ml_platform.assets.conventions import DEFINED_BY, code_version, daily_freshness
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.factory import build_use_case
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.sources import EventSource
from ml_platform.runner import DAILY_STAGES, MONITORING_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support import graphql as gql
from ml_platform_tests.support.fixtures import START, day_keys
from ml_platform_tests.support.servers import dagster_servers, open_instance, prepare_dagster_home, wait_until

DAYS, ARTICLES_PER_DAY, SCORED_DAYS = 16, 30, 2
DAILY_ASSETS = ("raw_events", "features", "predictions", "drift", "report")

# The UI's own query for an asset's freshness (ui-core's FreshnessStatusQuery), with the code version beside it.
FRESHNESS_QUERY = """
query FreshnessStatusQuery($assetKey: AssetKeyInput!) {
  instance { freshnessEvaluationEnabled }
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      opVersion
      freshnessStatusInfo { freshnessStatus freshnessStatusMetadata { lastMaterializedTimestamp } }
    }
  }
}
"""


@dataclass
class NewsHome:
    """The news use case materialized once: each asset's materializations, the lake, the instance's home."""

    spec: UseCaseSpec
    home: Path
    data: Path
    materializations: dict[str, list[dg.AssetMaterialization]]

    @property
    def lake(self) -> DataLake:
        return DataLake(base_path=str(self.data / "lake"))


@pytest.fixture(scope="module")
def news_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NewsHome]:
    root = tmp_path_factory.mktemp("conventions")
    data, home = root / "data", prepare_dagster_home(root / "home")
    news = next(spec for spec in load_specs() if spec.name == "news")
    # drift measured on 30 articles a day (the shipped spec wants 100), so its row count is not zero
    spec = news.model_copy(update={"drift": news.drift.model_copy(update={"min_rows": 10})})
    days = day_keys(count=DAYS)
    with pytest.MonkeyPatch.context() as patch, open_instance(home) as instance:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(data))
        land_days(
            EventSource(data_dir=str(data)).landing_dir(spec.source),
            generate_news_events(START, DAYS, ARTICLES_PER_DAY, 5),
        )
        defs = build_definitions([spec])
        results = [
            materialize_stages(defs, spec, DAILY_STAGES[:2], instance, days),
            materialize_stages(defs, spec, TRAINING_STAGES, instance),
            materialize_stages(
                defs, spec, [DAILY_STAGES[2], *MONITORING_STAGES, "report"], instance, days[-SCORED_DAYS:]
            ),
        ]
    assert all(result.success for result in results)
    materializations: dict[str, list[dg.AssetMaterialization]] = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            materializations.setdefault(materialization.asset_key.path[-1], []).append(materialization)
    yield NewsHome(spec, home, data, materializations)


def test_every_daily_materialization_and_the_training_set_carry_dagster_row_count(news_home: NewsHome) -> None:
    spec, lake, days = news_home.spec, news_home.lake, day_keys(count=DAYS)
    expected_days = {"raw_events": days, "features": days, **dict.fromkeys(DAILY_ASSETS[2:], days[-SCORED_DAYS:])}
    for asset in DAILY_ASSETS:
        by_day = {m.partition: m.metadata for m in news_home.materializations[asset]}
        assert sorted(by_day) == expected_days[asset], asset
        on_disk = lake.row_counts(keys.of_stage(spec, asset), expected_days[asset]) if asset != "report" else None
        for day, metadata in by_day.items():
            row_count = metadata["dagster/row_count"]
            assert isinstance(row_count, dg.IntMetadataValue), (asset, day, row_count)
            assert row_count.value == metadata["rows"].value, (asset, day)  # one count, under both keys
            # the report counts the day's scored articles it reports on
            assert row_count.value == (on_disk[day] if on_disk is not None else ARTICLES_PER_DAY), (asset, day)
            assert row_count.value > 0, (asset, day)
    [training_set] = news_home.materializations["training_set"]
    stored = lake.read(keys.training_set(spec), None)
    assert training_set.metadata["dagster/row_count"] == dg.MetadataValue.int(len(stored)) and len(stored) > 0


def _code_versions(spec: UseCaseSpec) -> dict[str, str | None]:
    assets = build_use_case(spec, Settings.from_env()).assets or []
    versions = {key: version for asset in assets for key, version in asset.code_versions_by_key.items()}
    return {stage: versions.get(keys.of_stage(spec, stage)) for stage in keys.STAGES}


def test_each_asset_s_code_version_changes_exactly_with_the_spec_fields_that_define_it(churn_spec: UseCaseSpec) -> None:
    spec = churn_spec
    base = _code_versions(spec)
    report_free = set(keys.STAGES) - {"report"}  # churn is a classifier: no report asset
    assert set(DEFINED_BY) == set(keys.STAGES)
    assert all(base[stage] for stage in report_free) and len({base[stage] for stage in report_free}) == len(report_free)
    assert _code_versions(spec) == base  # the same on every load

    def changed(**update: object) -> set[str]:
        after = _code_versions(spec.model_copy(update=update))
        return {stage for stage in report_free if after[stage] != base[stage]}

    window = spec.features[0].model_copy(update={"window_days": spec.features[0].window_days + 1})
    assert changed(drift=spec.drift.model_copy(update={"psi_threshold": 0.3})) == {"drift"}
    assert changed(gates=spec.gates.model_copy(update={"significance_level": 0.01})) == {"model", "shadow_comparison"}
    assert changed(gates=spec.gates.model_copy(update={"min_rows_per_day": 5})) == {"raw_events"}
    assert changed(training=spec.training.model_copy(update={"seed": 8})) == {
        "training_set",
        "model",
        "shadow_comparison",
    }
    assert changed(features=[window, *spec.features[1:]]) == {
        "features",
        "predictions",
        "drift",
        "training_set",
        "model",
        "shadow_predictions",
    }
    assert changed(monitoring=spec.monitoring.model_copy(update={"shadow_versions": [1]})) == {"shadow_predictions"}
    assert (
        changed(description="same assets, other words", schedule=spec.schedule.model_copy(update={"daily_at": "04:00"}))
        == set()
    )


def test_the_freshness_deadline_is_the_daily_schedule_plus_late_after_minutes(churn_spec: UseCaseSpec) -> None:
    late_evening = churn_spec.schedule.model_copy(
        update={"daily_at": "22:45", "late_after_minutes": 90, "timezone": "Europe/Berlin"}
    )
    policy = daily_freshness(churn_spec.model_copy(update={"schedule": late_evening}))
    assert isinstance(policy, dg.FreshnessPolicy)
    # fresh when materialized from 22:45 to 00:15 Berlin time; late from 00:15 on until it is
    assert (policy.deadline_cron, policy.lower_bound_delta, policy.timezone) == (
        "15 0 * * *",
        dt.timedelta(minutes=90),
        "Europe/Berlin",
    )
    nodes = build_use_case(churn_spec, Settings.from_env()).assets or []
    policies = {key.path[-1]: asset.specs_by_key[key].freshness_policy for asset in nodes for key in asset.keys}
    assert {stage for stage, policy in policies.items() if policy} == set(DAILY_ASSETS) - {"report"} | {
        "shadow_predictions"
    }
    assert policies["raw_events"] == daily_freshness(churn_spec)  # 01:30 + 120 minutes
    assert policies["raw_events"].deadline_cron == "30 3 * * *"


def _backdate_latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, days: int) -> None:
    """Make `key`'s latest materialization one `days` old: its last run was then (the freshness daemon judges the
    wall-clock time of the latest materialization against the deadline)."""
    [record] = instance.fetch_materializations(key, limit=1).records
    entry = record.event_log_entry
    instance.event_log_storage.store_event(entry._replace(timestamp=entry.timestamp - days * 86_400))


def test_a_late_daily_asset_shows_freshness_fail_and_an_on_time_one_pass_in_the_ui(
    news_home: NewsHome,
    tmp_path: Path,
) -> None:
    spec = news_home.spec
    late, fresh = keys.features(spec), keys.raw_events(spec)
    with open_instance(news_home.home) as instance:
        _backdate_latest_materialization(instance, late, days=3)
    env = {"ML_PLATFORM_DATA_DIR": str(news_home.data), "FRESHNESS_DAEMON_INTERVAL_SECONDS": "1"}
    started = time.monotonic()
    with dagster_servers(news_home.home, env, log_dir=tmp_path / "logs") as servers:

        def freshness(key: dg.AssetKey) -> dict:
            return gql.graphql(
                servers.url, FRESHNESS_QUERY, {"assetKey": {"path": list(key.path)}}, "FreshnessStatusQuery"
            )

        def evaluated() -> dict | None:
            answers = {key: freshness(key) for key in (late, fresh)}
            statuses = [
                (answer["assetNodeOrError"]["freshnessStatusInfo"] or {}).get("freshnessStatus")
                for answer in answers.values()
            ]
            return answers if "UNKNOWN" not in statuses and None not in statuses else None

        answers = wait_until(evaluated, servers, "the freshness daemon to evaluate the news assets", timeout=120)
        untracked = freshness(keys.training_set(spec))
    print(f"servers up, freshness evaluated and read in {time.monotonic() - started:.1f} s")
    assert answers[late]["instance"]["freshnessEvaluationEnabled"] is True
    assert answers[late]["assetNodeOrError"]["freshnessStatusInfo"]["freshnessStatus"] == "DEGRADED"  # FAIL: late
    assert answers[fresh]["assetNodeOrError"]["freshnessStatusInfo"]["freshnessStatus"] == "HEALTHY"  # PASS
    assert untracked["assetNodeOrError"]["freshnessStatusInfo"] is None  # no policy on the training side
    # the servers' code server is another process (another hash seed): the code version computed here
    shipped = next(spec for spec in load_specs() if spec.name == "news")
    assert answers[fresh]["assetNodeOrError"]["opVersion"] == code_version(shipped, "raw_events")
