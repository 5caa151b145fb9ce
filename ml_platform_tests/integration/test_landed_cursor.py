"""The landed-data sensor at decades of landed days: the cursor Dagster writes into every tick stays a few
bytes (each day's version and digest live in the lake, named by their hash), a quiet tick writes nothing,
and an earlier cursor (a rewound one, or from before the change) still reads what it named."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.automation.runs import MAX_DAYS_PER_RUN
from ml_platform.definitions import build_definitions, load_specs
from ml_platform_tests.support.automation import evaluate, landed_days, requested_ranges
from ml_platform_tests.support.long_history import days_from, land_history, write_history_spec

NAME, SENSOR = "history", "history_landed_data_sensor"
FIRST = dt.date(1990, 1, 1)
DAYS = 1_000


@pytest.fixture
def history(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dg.Definitions, Path]:
    write_history_spec(tmp_path / "specs", NAME, FIRST)
    monkeypatch.setenv("ML_PLATFORM_SPECS_DIR", str(tmp_path / "specs"))
    land_history(data_dir / "landing" / NAME, days_from(FIRST, DAYS))
    return build_definitions([spec for spec in load_specs() if spec.name == NAME]), data_dir / "landing" / NAME


def state_files(data_dir: Path) -> list[str]:
    return sorted(path.name for path in (data_dir / "lake" / "_state" / NAME / "landed_data").iterdir())


def test_the_cursor_stays_small_and_a_quiet_tick_writes_nothing(
    history: tuple[dg.Definitions, Path], data_dir: Path
) -> None:
    defs, landing = history
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(defs, SENSOR, instance, None)
    days = [day.isoformat() for day in days_from(FIRST, DAYS)]
    runs = [days[start : start + MAX_DAYS_PER_RUN] for start in range(0, DAYS, MAX_DAYS_PER_RUN)]
    assert requested_ranges(first.run_requests) == [(run[0], run[-1]) for run in runs]
    assert len(first.cursor) < 200 and len(landed_days(first.cursor, defs, NAME)) == DAYS
    [written] = state_files(data_dir)

    quiet = evaluate(defs, SENSOR, instance, first.cursor)
    assert quiet.run_requests == [] and quiet.cursor == first.cursor and state_files(data_dir) == [written]

    (landing / "1991-06-01.csv").write_text((landing / "1991-06-01.csv").read_text().replace(",view,", ",purchase,", 1))
    changed = evaluate(defs, SENSOR, instance, quiet.cursor)
    assert requested_ranges(changed.run_requests)[0][0] == "1991-06-01" and len(state_files(data_dir)) == 2
    assert landed_days(changed.cursor, defs, NAME)["1991-06-01"] != landed_days(first.cursor, defs, NAME)["1991-06-01"]

    rewound = evaluate(defs, SENSOR, instance, first.cursor)  # an earlier cursor still finds its days
    assert requested_ranges(rewound.run_requests) == requested_ranges(changed.run_requests)


def test_a_cursor_holding_its_days_is_read_and_moved_to_the_lake(history: tuple[dg.Definitions, Path]) -> None:
    defs, _ = history
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(defs, SENSOR, instance, None)
    inline = json.dumps({"days": landed_days(first.cursor, defs, NAME), "reported": {}})  # the former format

    moved = evaluate(defs, SENSOR, instance, inline)
    assert moved.run_requests == [] and json.loads(moved.cursor) == json.loads(first.cursor)


def test_a_cursor_whose_days_are_gone_adopts_the_days_already_ingested(history: tuple[dg.Definitions, Path]) -> None:
    defs, _ = history
    instance = dg.DagsterInstance.ephemeral()
    lost = evaluate(defs, SENSOR, instance, json.dumps({"state": "0" * 64, "reported": {}}))
    assert len(lost.run_requests) == 3  # nothing is in the lake yet: every day runs, as on a first tick
