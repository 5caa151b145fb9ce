"""Your own files as they come (CSV, a label blank where the outcome is unknown, string categories, no id
column): `new-use-case --from-data` drafts the spec, and materialize, train and predict run it unedited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ml_platform.cli import main as cli
from ml_platform.resources.sources import source_resource
from ml_platform.spec import load_spec
from ml_platform.spec_draft import draft_spec

DAYS = 24
CARRIERS = [f"C{i}" for i in range(12)]
AIRPORTS = [f"AP{i:02d}" for i in range(40)]


def land_flights(directory: Path, seed: int = 5) -> dict[str, int]:
    """Daily CSV exports of flights; `delayed` depends on carrier, distance and hour, blank when unknown.
    Returns the number of unknown outcomes per day."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    unknown = {}
    for offset in range(DAYS):
        day = dt.date(2025, 3, 1) + dt.timedelta(days=offset)
        n = 300
        carrier = rng.choice(CARRIERS, n)
        hour = rng.integers(5, 23, n)
        distance = rng.gamma(3.0, 300.0, n).round(1)
        risk = -2.0 + 0.25 * np.array([CARRIERS.index(c) for c in carrier]) / 3 + 0.12 * (hour - 5) + distance / 2000
        delayed = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(float)
        blank = rng.random(n) < 0.08
        delayed[blank] = np.nan
        unknown[day.isoformat()] = int(blank.sum())
        stamps = [
            dt.datetime.combine(day, dt.time(int(h), int(m))).isoformat() + "Z"
            for h, m in zip(hour, rng.integers(0, 60, n), strict=True)
        ]
        pd.DataFrame(
            {
                "departure": stamps,
                "carrier": carrier,
                "origin": rng.choice(AIRPORTS, n),
                "distance_km": distance,
                "delayed": pd.array(delayed, dtype="Float64").astype("Int64"),
            }
        ).to_csv(directory / f"{day.isoformat()}.csv", index=False)
    return unknown


def test_a_drafted_spec_infers_dtypes_limits_roles_and_features(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    land_flights(data_dir / "exports" / "flights")
    specs = tmp_path / "specs"
    assert (
        cli(
            [
                "new-use-case",
                "flights",
                "--dir",
                str(specs),
                "--from-data",
                str(data_dir / "exports" / "flights"),
                "--entity",
                "origin",
            ]
        )
        == 0
    ), capsys.readouterr().err
    spec = load_spec(specs / "flights.yaml")
    drafted = yaml.safe_load((specs / "flights.yaml").read_text())
    columns = {c["name"]: c for c in drafted["columns"]}
    assert spec.event_id_column is None and spec.timestamp_column == "departure" and spec.label.column == "delayed"
    assert columns["delayed"]["dtype"] == "int64" and 0 < columns["delayed"]["max_null_fraction"] < 0.5
    assert columns["departure"]["dtype"] == "timestamp" and columns["distance_km"]["min_value"] == 0
    assert {f.name: f.agg for f in spec.features}["carrier"] == "category"

    # the drafted spec running unedited through materialize, train and predict: test_real_data.py, on real data


def test_ambiguous_or_missing_roles_are_named_with_the_option_to_use(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    land_flights(data_dir / "exports" / "flights")
    assert (
        cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(data_dir / "exports" / "flights")])
        == 2
    )
    assert "several columns could be the entity" in capsys.readouterr().err and not (tmp_path / "flights.yaml").exists()
    assert cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(tmp_path)]) == 2
    assert "no day files named YYYY-MM-DD.csv" in capsys.readouterr().err
    assert (
        cli(
            [
                "new-use-case",
                "flights",
                "--dir",
                str(tmp_path),
                "--from-data",
                str(data_dir / "exports" / "flights"),
                "--entity",
                "origin",
                "--label",
                "nope",
            ]
        )
        == 2
    )
    assert "--label 'nope' is not a column" in capsys.readouterr().err

    assert (
        cli(
            [
                "new-use-case",
                "flights",
                "--dir",
                str(tmp_path),
                "--from-data",
                str(data_dir / "exports" / "flights"),
                "--entity",
                "origin",
                "--label",
                "delayed",
                "--positive",
                "yes",
            ]
        )
        == 2
    )
    assert "--positive is for a string label; 'delayed' is int64" in capsys.readouterr().err


def test_month_first_timestamps_are_drafted_with_their_format_and_read_as_written(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    exports = data_dir / "exports" / "flights"
    land_flights(exports)
    for path in exports.iterdir():  # the same exports as a US system writes them: 03/14/2025 06:05:00
        frame = pd.read_csv(path, dtype=str)
        frame["departure"] = pd.to_datetime(frame["departure"]).dt.strftime("%m/%d/%Y %H:%M:%S")
        frame.to_csv(path, index=False)
    assert (
        cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(exports), "--entity", "origin"]) == 0
    ), capsys.readouterr().err
    spec = load_spec(tmp_path / "flights.yaml")
    assert spec.source.timestamp_format == "%m/%d/%Y %H:%M:%S" and spec.timestamp_column == "departure"

    day = source_resource(spec, data_dir).read_day(spec, "2025-03-14")
    assert day["departure"].dt.strftime("%Y-%m-%d").eq("2025-03-14").all() and day["departure"].dt.tz is not None

    for path in exports.iterdir():  # the 12th at the latest: 03/04 could be March 4th or April 3rd
        path.unlink() if path.stem > "2025-03-12" else None
    assert (
        cli(
            [
                "new-use-case",
                "flights2",
                "--dir",
                str(tmp_path),
                "--from-data",
                str(exports),
                "--entity",
                "origin",
                "--timestamp",
                "departure",
            ]
        )
        == 2
    )
    assert "day-first and month-first both fit" in capsys.readouterr().err


def land_service_records(
    directory: Path, days: list[dt.date], file_format: str = "csv", per_day: int = 200, seed: int = 3
) -> None:
    """Daily exports of service records, with what real histories have and a sample misses: a `channel`
    that gains a value in the last days, one day with far more missing costs than any other, and a `ticket`
    number unique within each day and (unless a test repeats one) across days."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    for index, day in enumerate(days):
        stamps = [
            dt.datetime.combine(day, dt.time(int(h), int(m))).isoformat() + "Z"
            for h, m in zip(rng.integers(0, 24, per_day), rng.integers(0, 60, per_day), strict=True)
        ]
        cost = rng.gamma(2.0, 40.0, per_day).round(2)
        cost[rng.random(per_day) < (0.30 if index == 4 else 0.02)] = np.nan  # day 4: a bad day no sample reads
        escalated = pd.array((rng.random(per_day) < 0.2).astype(int), dtype="Int64")
        escalated[rng.random(per_day) < 0.05] = pd.NA
        frame = pd.DataFrame(
            {
                "ticket": np.arange(per_day) + 1_000 * index,
                "opened": stamps,
                "site": rng.choice([f"S{i:02d}" for i in range(30)], per_day),
                "status": rng.choice(["open", "closed", "pending"], per_day),
                "channel": rng.choice(["phone", "web"] + (["chat"] if index >= len(days) - 3 else []), per_day),
                "cost": cost,
                "escalated": escalated,
            }
        )
        if file_format == "csv":
            frame.to_csv(directory / f"{day}.csv", index=False)
        else:
            frame.assign(opened=pd.to_datetime(frame["opened"])).to_parquet(directory / f"{day}.parquet", index=False)


def draft(data_dir: Path, directory: Path) -> tuple[dict, str]:
    """The drafted spec, and its text with each wrapped comment on one line."""
    text = draft_spec(
        "service", data_dir, directory, label="escalated", timestamp="opened", entity="site", progress=False
    )
    return yaml.safe_load(text), text.replace("\n#   ", " ")


def consecutive(count: int) -> list[dt.date]:
    return [dt.date(2024, 5, 1) + dt.timedelta(days=offset) for offset in range(count)]


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_limits_come_from_every_day_a_late_category_stays_open_and_a_stable_one_is_closed(
    data_dir: Path,
    file_format: str,
) -> None:
    exports = data_dir / "exports" / "service"
    land_service_records(exports, consecutive(24), file_format)
    drafted, text = draft(data_dir, exports)
    columns = {column["name"]: column for column in drafted["columns"]}

    assert columns["status"]["allowed_values"] == ["closed", "open", "pending"]
    assert "allowed_values" not in columns["channel"]
    assert "channel: never null; allowed_values left open: 1 of its 3 values first appeared after 2024-05-12" in text

    worst = max(
        pd.read_csv(path)["cost"].isna().mean() if file_format == "csv" else pd.read_parquet(path)["cost"].isna().mean()
        for path in exports.iterdir()
    )
    assert worst > 0.2 and worst <= columns["cost"]["max_null_fraction"] <= worst + 0.1
    assert f"{worst:.1%} null on its worst day (2024-05-05)" in text
    assert columns["cost"]["min_value"] == 0 and "max_value" not in columns["cost"]
    features = {feature.get("column"): feature["agg"] for feature in drafted["features"]}
    assert (
        "cost" not in features and "# Not features: ['cost'], numbers with nulls on some days" in text
    )  # feature_nulls
    assert features["status"] == "category" and "ticket" not in features  # the event id is a key, not a feature
    assert drafted["event_id_column"] == "ticket" and columns["ticket"]["severity"] == "block"
    assert (
        columns["escalated"]["dtype"] == "int64"
    )  # with blanks: Int64 as pandas reads the CSV or the Parquet it wrote
    assert "missing_days" not in drafted["source"] and drafted["start_date"] == "2024-05-01"


def test_learned_limits_warn_and_structural_checks_block(data_dir: Path, tmp_path: Path) -> None:
    exports = data_dir / "exports" / "service"
    land_service_records(exports, consecutive(10))
    drafted, text = draft(data_dir, exports)
    columns = {column["name"]: column for column in drafted["columns"]}
    assert drafted["gates"]["severity"] == {"null_fraction": "warn", "value_ranges": "warn"}
    assert columns["escalated"]["severity"] == "warn" and 0 < columns["escalated"]["max_null_fraction"] < 0.5
    assert [name for name, column in columns.items() if "severity" in column] == ["ticket", "escalated"]
    assert "# gates.severity: the limits learned from the data (null_fraction, value_ranges) warn" in text

    (tmp_path / "service.yaml").write_text(text)  # comments unwrapped: the same YAML
    spec = load_spec(tmp_path / "service.yaml")
    assert spec.column_severity(spec.column("cost"), "null_fraction") == "warn"
    assert spec.column_severity(spec.column("ticket"), "null_fraction") == "block"
    assert spec.check_severity("unique_event_ids") == spec.check_severity("timestamps_in_partition") == "block"


def test_an_id_that_repeats_on_another_day_or_within_an_unsampled_day_is_not_the_event_id(data_dir: Path) -> None:
    exports = data_dir / "exports" / "service"
    land_service_records(exports, consecutive(24))
    path = exports / "2024-05-06.csv"  # no sample reads this day: every 3rd day from the first
    frame = pd.read_csv(path)
    frame.loc[7, "ticket"] = 3  # day 0's ticket 3 again
    frame.to_csv(path, index=False)
    drafted, _text = draft(data_dir, exports)
    assert "event_id_column" not in drafted

    land_service_records(data_dir / "exports" / "within", consecutive(24))
    path = data_dir / "exports" / "within" / "2024-05-06.csv"
    frame = pd.read_csv(path)
    frame.loc[7, "ticket"] = frame.loc[8, "ticket"]
    frame.to_csv(path, index=False)
    assert "event_id_column" not in draft(data_dir, data_dir / "exports" / "within")[0]


def test_days_without_a_file_are_days_without_events(data_dir: Path, tmp_path: Path) -> None:
    """Field records of a few days a month, decades ago: the start is the first file, the gaps are empty days."""
    days = [dt.date(1978, month, day) for month in range(3, 9) for day in (2, 3, 17)]
    exports = data_dir / "exports" / "field"
    land_service_records(exports, days)
    drafted, text = draft(data_dir, exports)
    assert drafted["source"]["missing_days"] == "empty" and drafted["start_date"] == "1978-03-02"
    assert "# source.missing_days: empty: 151 of the 169 days from 1978-03-02 to 1978-08-17 have no file" in text
    (tmp_path / "field.yaml").write_text(text)
    assert load_spec(tmp_path / "field.yaml").missing_days == "empty"


def test_a_decimal_anywhere_makes_a_float_and_columns_missing_from_some_files_are_left_out(data_dir: Path) -> None:
    exports = data_dir / "exports" / "service"
    land_service_records(exports, consecutive(12))
    for path in sorted(exports.iterdir()):
        frame = pd.read_csv(path)
        frame["visits"] = np.arange(len(frame))  # whole numbers on every day ...
        if path.stem == "2024-05-11":
            frame["visits"] = frame["visits"].astype(float)
            frame.loc[len(frame) - 1, "visits"] = 2.5  # ... but for the last row of one day
            frame["note"] = "late column"
        frame.to_csv(path, index=False)
    drafted, text = draft(data_dir, exports)
    columns = {column["name"]: column for column in drafted["columns"]}
    assert columns["visits"]["dtype"] == "float64" and "note" not in columns
    assert "Left out: 'note' (in 1 of 12 files)." in text


def test_parquet_integers_and_booleans_with_nulls_are_declared_as_pandas_will_read_them(data_dir: Path) -> None:
    """Written from pandas' nullable columns they come back as such (Int64, boolean); from another writer
    pandas reads integers with nulls as floats and booleans with nulls as objects, which no dtype matches."""
    for writer in ("pandas", "other"):
        exports = data_dir / "exports" / writer
        land_service_records(exports, consecutive(8), "parquet")
        for path in exports.iterdir():
            frame = pd.read_parquet(path)
            frame["urgent"] = pd.array([True, None] * (len(frame) // 2), dtype="boolean")
            frame["visits"] = pd.array([1, None] * (len(frame) // 2), dtype="Int64")
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table if writer == "pandas" else table.replace_schema_metadata(None), path)
        drafted, text = draft(data_dir, exports)
        columns = {column["name"]: column for column in drafted["columns"]}
        assert columns["visits"]["max_null_fraction"] == 0.63
        if writer == "pandas":
            assert columns["urgent"]["dtype"] == "bool" and columns["visits"]["dtype"] == "int64"
        else:
            assert (
                "urgent" not in columns and "'urgent' (booleans with nulls, which pandas reads from Parquet as" in text
            )
            assert columns["visits"]["dtype"] == "float64"
