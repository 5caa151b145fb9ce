"""Days larger than memory: a day read, validated and scored in row-group batches stores the same bytes as the
day handled whole (the batches here are a few hundred rows, so a small landing spans many of them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from demo.generators.churn import write_landing_files
from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.checks.rules import RawEventGates, identity_hashes, validate_events
from ml_platform.definitions import load_specs
from ml_platform.io import parquet_lake
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.sources import EventSource, files
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.fixtures import START, landing_dir
from ml_platform_tests.unit.test_rules import DAY, RAW_CASES
from ml_platform_tests.unit.test_stage_threads import DAYS, assert_same_lakes, run_stages


def test_batches_of_a_few_hundred_rows_store_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_landing_files(landing_dir(data), START, len(DAYS), 3_000, seed=7)
    run_stages(data, tmp_path / "whole", threads=1, chunk_days=31)
    read_batches, source_batches = [], []
    iter_batches, read_source = parquet_lake.DataLake.iter_batches, files.FileSource.read_batches

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for batch in iter_batches(self, *args, **kwargs, batch_rows=257):
            read_batches.append(len(batch))
            yield batch

    def counted_source(self, day):  # type: ignore[no-untyped-def]
        for batch in read_source(self, day):
            source_batches.append(len(batch))
            yield batch

    monkeypatch.setattr(parquet_lake.DataLake, "iter_batches", counted)
    monkeypatch.setattr(files.FileSource, "read_batches", counted_source)
    monkeypatch.setattr(files, "ROW_GROUP_ROWS", 257)  # the source's batches: a raw day is read in many
    monkeypatch.setattr(steps, "ROW_GROUP_ROWS", 257)  # and is larger than one: read again to be stored
    run_stages(data, tmp_path / "batched", threads=2, chunk_days=31)
    assert len(read_batches) > 6 * 2 and max(read_batches) == 257  # every scored day in several batches
    assert len(source_batches) > 2 * len(DAYS) * 2 and max(source_batches) == 257  # each raw day read twice
    assert_same_lakes(tmp_path / "whole", tmp_path / "batched")


@pytest.mark.parametrize("rows_per_batch", [1, 3])
@pytest.mark.parametrize(("use_case", "frame"), [pytest.param(row[1], row[2], id=row[0]) for row in RAW_CASES])
def test_raw_gates_over_batches_say_what_they_say_of_the_whole_day(
    use_case: UseCaseSpec, frame: pd.DataFrame, rows_per_batch: int
) -> None:
    """Every raw gate table case of test_rules.py, its frame fed a few rows at a time (duplicates span batches):
    the same outcomes, messages and metadata as the day judged whole."""
    batches = [frame.iloc[start : start + rows_per_batch] for start in range(0, max(len(frame), 1), rows_per_batch)]
    gates = RawEventGates(use_case, DAY)
    for batch in batches:
        gates.add(batch)
    assert gates.outcomes(lambda: batches) == validate_events(frame, use_case, DAY)


def test_a_hash_collision_alone_is_no_duplicate() -> None:
    """Rows whose identity hashes collide are compared exactly: equal hashes of different ids pass."""
    use_case, frame = RAW_CASES[0][1], RAW_CASES[0][2]
    gates = RawEventGates(use_case, DAY)
    gates.add(frame)
    gates.id_hashes = [np.zeros(len(frame), dtype=np.uint64)]  # every row "collides"
    outcome = next(o for o in gates.outcomes(lambda: [frame]) if o.check == "unique_event_ids")
    assert outcome.passed and outcome.message == f"partition {DAY}: {len(frame)} unique ids"


def test_identity_hashes_agree_across_batches_and_tell_values_apart() -> None:
    """Arrow strings are hashed from their bytes (no Python string per value): the same value hashes alike in any
    batch, at any offset inside its batch; distinct values of any length hash apart; nulls hash alike."""
    values = ["e1", "e22", None, "event-0000000017", "", "e1", "event-0000000017", None, "é"]
    arrow = pd.DataFrame({"id": pd.array(values, dtype=pd.ArrowDtype(pa.string())), "n": range(len(values))})
    whole = identity_hashes(arrow, ["id"])
    in_batches = np.concatenate([identity_hashes(arrow.iloc[i : i + 2], ["id"]) for i in range(0, len(arrow), 2)])
    assert (whole == in_batches).all()
    by_value = {}
    for value, hashed in zip(values, whole, strict=True):
        assert by_value.setdefault(value, hashed) == hashed
    assert len(set(by_value.values())) == len(by_value)
    assert len(set(identity_hashes(arrow, ["id", "n"]))) == len(values)  # with a second column every row differs


def test_arrow_string_ids_duplicated_across_batches_fail_exactly_as_the_whole_day() -> None:
    use_case, frame = RAW_CASES[0][1], RAW_CASES[0][2].copy()
    frame["event_id"] = pd.array([f"e{i % 7}" for i in range(len(frame))], dtype=pd.ArrowDtype(pa.string()))
    gates = RawEventGates(use_case, DAY)
    batches = [frame.iloc[:4], frame.iloc[4:]]
    for batch in batches:
        gates.add(batch)
    outcome = next(o for o in gates.outcomes(lambda: batches) if o.check == "unique_event_ids")
    whole = next(o for o in validate_events(frame, use_case, DAY) if o.check == "unique_event_ids")
    assert outcome == whole and outcome.message.endswith("has 3 duplicated id(s), e.g. 'e0'")


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_day_read_in_batches_is_judged_and_stored_as_the_day_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str
) -> None:
    """A landed day (Parquet row groups, CSV chunks) of many batches: a duplicate id in a later batch fails the day
    with the whole day's message; the good day stores the same bytes as the day read whole."""
    churn = next(s for s in load_specs() if s.name == "churn")
    use_case = churn.model_copy(update={"source": churn.source.model_copy(update={"format": file_format})})
    good, bad = DAYS[0], DAYS[1]
    write_landing_files(landing_dir(tmp_path), START, 2, 3_000, seed=8, file_format=file_format)
    landed = landing_dir(tmp_path) / f"{bad}.{file_format}"
    frame = pd.read_parquet(landed) if file_format == "parquet" else pd.read_csv(landed)
    frame.loc[2_900, "event_id"] = frame.loc[3, "event_id"]
    frame.to_parquet(landed, index=False) if file_format == "parquet" else frame.to_csv(landed, index=False)
    source = EventSource(data_dir=str(tmp_path))

    def ingested(lake_dir: Path) -> dict[str, steps.DayResult]:
        results = {result.day: result for result in steps.ingest(source, use_case, [good, bad], threads=1)}
        steps.store_day(DataLake(base_path=str(lake_dir)), keys.raw_events(use_case), results[good])
        return results

    whole = ingested(tmp_path / "whole")
    monkeypatch.setattr(files, "ROW_GROUP_ROWS", 257)
    monkeypatch.setattr(steps, "ROW_GROUP_ROWS", 257)
    batched = ingested(tmp_path / "batched")
    assert batched[good].frame is None and batched[good].batches is not None  # never held whole
    assert batched[bad].outcomes == whole[bad].outcomes and not batched[bad].passed
    unique = next(o for o in batched[bad].outcomes if o.check == "unique_event_ids")
    assert (
        unique.message
        == f"partition {bad}: column 'event_id' has 1 duplicated id(s), e.g. '{frame.loc[3, 'event_id']}'"
    )
    assert batched[good].outcomes == whole[good].outcomes
    assert batched[good].stored_rows == whole[good].stored_rows > 2 * 257
    stored = [
        DataLake(base_path=str(tmp_path / side)).partition_path(keys.raw_events(use_case), good)
        for side in ("whole", "batched")
    ]
    assert Path(stored[0]).read_bytes() == Path(stored[1]).read_bytes()
