"""Irregular calendars through Dagster: with `source.missing_days: empty` a business-day use case runs every
calendar day of a range in one run (weekends as days without events, scored and measured as nothing), trains on
the days with events, and its landed-data sensor never waits for a weekend; with the default a missing day fails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from demo.generators.churn import generate_churn_events, write_landing_files
from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.checks.rules import DRIFT_CHECK
from ml_platform.definitions import build_definitions
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.sources import EventSource
from ml_platform.runner import DAILY_STAGES, MONITORING_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.automation import evaluate, requested_ranges
from ml_platform_tests.support.irregular import NAME, START, is_business_day, land_business_days, landing, weekday_spec
from ml_platform_tests.support.results import materializations

SENSOR = f"{NAME}_landed_data_sensor"
EMPTY = "(source.missing_days: empty)"


def evaluations(result: dg.ExecuteInProcessResult, key: dg.AssetKey, check: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.partition: e for e in result.get_asset_check_evaluations() if e.asset_key == key and e.check_name == check
    }


def row_counts(lake: DataLake, key: dg.AssetKey, days: list[str]) -> dict[str, int]:
    counts = lake.row_counts(key, days)
    assert set(counts) == set(days), f"{key.to_user_string()}: not stored {sorted(set(days) - set(counts))}"
    return counts


def test_a_business_day_calendar_goes_through_every_stage_in_one_run(data_dir: Path) -> None:
    spec = weekday_spec()
    days = land_business_days(data_dir, 49, 1_500)
    weekends = [day for day in days if not is_business_day(day)]
    defs, instance = build_definitions([spec]), dg.DagsterInstance.ephemeral()
    lake = DataLake(base_path=str(data_dir / "lake"))

    daily = materialize_stages(defs, spec, ["raw_events", "features"], instance, days)
    assert daily.success
    for key in (keys.raw_events(spec), keys.features(spec)):
        counts = row_counts(lake, key, days)
        assert [day for day in days if counts[day] == 0] == weekends, key
        assert instance.get_materialized_partitions(key) == set(days)
    landed = evaluations(daily, keys.raw_events(spec), "landed")
    assert all(e.passed for e in landed.values()) and len(landed) == len(days)
    assert landed[weekends[0]].description == f"partition {weekends[0]}: no file: a day without events {EMPTY}"
    assert evaluations(daily, keys.raw_events(spec), "min_rows")[weekends[0]].passed
    complete = evaluations(daily, keys.features(spec), "inputs_complete")
    assert all(e.passed for e in complete.values()) and len(complete) == len(days), "weekends are inputs, present"

    training = materialize_stages(defs, spec, TRAINING_STAGES, instance)
    assert training.success
    trained = lake.read(keys.training_set(spec), None)
    assert len(trained) and not set(trained["day"]) & set(weekends), "a day without events adds no rows"

    everything = materialize_stages(defs, spec, [*DAILY_STAGES, *MONITORING_STAGES], instance, days)
    assert everything.success, "raw -> features -> predictions -> drift of every calendar day, in one run"
    scored = row_counts(lake, keys.predictions(spec), days)
    assert [day for day in days if scored[day] == 0] == weekends
    assert lake.read(keys.predictions(spec), weekends + days[-1:])["day"].eq(days[-1]).all()
    scores_valid = evaluations(everything, keys.predictions(spec), "scores_valid")
    assert all(e.passed for e in scores_valid.values()) and len(scores_valid) == len(days)
    assert (
        scores_valid[weekends[-1]].description
        == f"partition {weekends[-1]}: no events on {weekends[-1]} {EMPTY}: nothing to score"
    )
    notes = {m.partition: m.metadata.get("note") for m in materializations(everything, keys.predictions(spec))}
    assert notes[weekends[-1]].value == f"no events on {weekends[-1]} {EMPTY}: nothing to score", (
        "the partition says why"
    )
    assert notes[days[-1]] is None
    drift = evaluations(everything, keys.drift(spec), DRIFT_CHECK)
    assert drift[weekends[-1]].description.endswith(f"no events on {weekends[-1]} {EMPTY}: no drift measured")
    assert row_counts(lake, keys.drift(spec), weekends) == dict.fromkeys(weekends, 0)
    assert row_counts(lake, keys.drift(spec), days[-1:])[days[-1]] > 0


def test_the_landed_data_sensor_runs_a_later_day_without_waiting_for_days_without_a_file(data_dir: Path) -> None:
    land_business_days(data_dir, 10, 200)  # Wednesday 1 to Friday 10 January: no file on the 4th and 5th
    monday = dt.date(2025, 1, 13)
    ranges = {}
    for missing_days in ("empty", "fail"):
        defs, instance = build_definitions([weekday_spec(missing_days)]), dg.DagsterInstance.ephemeral()
        first = evaluate(defs, SENSOR, instance, None)
        write_landing_files(landing(data_dir), monday, 1, 200, seed=9)
        later = evaluate(defs, SENSOR, instance, first.cursor)
        ranges[missing_days] = requested_ranges(first.run_requests), later.run_requests
        (landing(data_dir) / f"{monday}.parquet").unlink()

    first, [later] = ranges["empty"]
    assert first == [("2025-01-01", "2025-01-10")], "the weekend runs with the days around it"
    assert later.tags["dagster/asset_partition_range_start"] == "2025-01-11" and (
        later.tags["dagster/asset_partition_range_end"] == "2025-01-13"
    ), "Monday brings its weekend, stored empty"
    first, [later] = ranges["fail"]
    assert first == [("2025-01-01", "2025-01-03"), ("2025-01-06", "2025-01-10")] and later.partition_key == "2025-01-13"


def test_a_file_landing_after_its_day_was_stored_empty_reruns_it_and_the_windows_containing_it(data_dir: Path) -> None:
    spec = weekday_spec()
    days = land_business_days(data_dir, 10, 200)
    defs, instance = build_definitions([spec]), dg.DagsterInstance.ephemeral()
    first = evaluate(defs, SENSOR, instance, None)
    assert materialize_stages(defs, spec, ["raw_events"], instance, days).success
    saturday = "2025-01-04"
    assert materialize_stages(defs, spec, ["raw_events"], instance, [saturday]).success, (
        "the schedule's run of a day with no file"
    )

    write_landing_files(landing(data_dir), dt.date.fromisoformat(saturday), 1, 200, seed=9)  # it arrives late
    [rerun] = evaluate(defs, SENSOR, instance, first.cursor).run_requests
    assert (rerun.tags["dagster/asset_partition_range_start"], rerun.tags["dagster/asset_partition_range_end"]) == (
        saturday,
        days[-1],
    ), "the day and every stored day whose feature window holds it"
    assert materialize_stages(defs, spec, ["raw_events"], instance, [saturday]).success
    assert DataLake(base_path=str(data_dir / "lake")).row_counts(keys.raw_events(spec), [saturday])[saturday] > 0


def test_without_missing_days_empty_a_day_without_a_file_fails_landed(data_dir: Path) -> None:
    spec = weekday_spec("fail")
    days = land_business_days(data_dir, 6, 200)
    result = materialize_stages(build_definitions([spec]), spec, ["raw_events"], dg.DagsterInstance.ephemeral(), days)
    assert not result.success
    landed = evaluations(result, keys.raw_events(spec), "landed")
    assert {day for day, e in landed.items() if not e.passed} == {"2025-01-04", "2025-01-05"}
    assert "no landed file" in landed["2025-01-04"].description
    stored = DataLake(base_path=str(data_dir / "lake")).existing_partitions(keys.raw_events(spec))
    assert not set(stored) & {"2025-01-04", "2025-01-05"}


def postgres_weekday_spec(table: str) -> UseCaseSpec:
    return UseCaseSpec.model_validate(
        {**weekday_spec().model_dump(), "source": {"kind": "postgres", "table": table, "missing_days": "empty"}}
    )


def test_a_postgres_day_without_rows_is_a_day_without_events_and_a_missing_table_still_fails(
    data_dir: Path,
    postgres_url: str,
    postgres_schema: str,
) -> None:
    table = f"{postgres_schema}.weekday_events"
    frames = {day.isoformat(): frame for day, frame in generate_churn_events(START, 4, 200, seed=11)}
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        for day, frame in frames.items():
            if day != "2025-01-03":
                frame.to_sql("weekday_events", connection, schema=postgres_schema, if_exists="append", index=False)
    source = EventSource(data_dir=str(data_dir), postgres_dsn=postgres_url)

    results = {r.day: r for r in steps.ingest(source, postgres_weekday_spec(table), sorted(frames))}
    assert all(outcome.passed for result in results.values() for outcome in result.outcomes)
    empty = results["2025-01-03"]
    assert empty.frame.empty and empty.outcomes[0].message.endswith(f"0 rows read: a day without events {EMPTY}")
    assert empty.frame.dtypes.to_dict() == steps.empty_events(postgres_weekday_spec(table)).dtypes.to_dict()
    assert len(results["2025-01-04"].frame) == len(frames["2025-01-04"])

    [unavailable] = steps.ingest(source, postgres_weekday_spec(f"{postgres_schema}.no_such_table"), ["2025-01-03"])
    assert unavailable.frame is None and not unavailable.outcomes[0].passed
    assert "no_such_table" in unavailable.outcomes[0].message
