"""Feature windows that never wait for another run: a split backfill's runs compute the same features in any order.

With `backfill.max_days_per_run` a backfill is several runs started side by side, and feature day D reads raw days
D-(lookback-1)..D while it is declared to depend on raw day D only (`daily.py`, `_features`). The run of days 5-8
may therefore compute features before the run of days 1-4 has stored raw days 1-4. So, under that setting, a raw
day of a window that is not in the lake (and not before the first partition, where the history begins) is read
from the use case's source as `steps.ingest` reads it (same columns, event ids and raw gates) into a scratch lake
that lives as long as the features stage: it is the other run's partition, never stored or recorded by this one.
The Parquet bytes are those the owning run writes, so the features are those of one run over the whole range; a
borrowed day the source cannot give, or that fails a blocking raw gate, fails the feature days whose windows hold it
(`inputs_complete`, naming the day and why), as a raw day failed in one run would.

Why not Dagster's own answer, a `TimeWindowPartitionMapping(start_offset=-(lookback-1))` from features to raw: the
backfill daemon then starts the run of days 5-8 only once the run of days 1-4 has stored its raw days (each run holds
both stages), which turns concurrent runs back into one queue, and a UI backfill of a few days would also target every
later feature day whose window reaches into them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import dagster as dg
import pandas as pd

from ml_platform import steps
from ml_platform.features.compute import feature_input_days
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.sources import EventSource
from ml_platform.spec import UseCaseSpec


@dataclass(frozen=True)
class LookbackLake:
    """The lake as a features stage reads it: raw days in `borrowed` come from `scratch`, everything else from
    `lake`. It answers only the reads `steps.build_features` makes, so a new kind of read there fails loudly here
    (AttributeError) instead of missing the borrowed days."""

    lake: DataLake
    scratch: DataLake
    raw_key: dg.AssetKey
    borrowed: frozenset[str]

    def _home(self, asset_key: dg.AssetKey, partition: str) -> DataLake:
        return self.scratch if asset_key == self.raw_key and partition in self.borrowed else self.lake

    def existing_partitions(self, asset_key: dg.AssetKey) -> list[str]:
        stored = self.lake.existing_partitions(asset_key)
        return sorted({*stored, *self.borrowed}) if asset_key == self.raw_key else stored

    def row_counts(self, asset_key: dg.AssetKey, partitions: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for partition in partitions:
            counts |= self._home(asset_key, partition).row_counts(asset_key, [partition])
        return counts

    def read(
        self,
        asset_key: dg.AssetKey,
        partitions: Sequence[str] | None,
        columns: Sequence[str] | None = None,
        missing_ok: bool = False,
        categories: Sequence[str] = (),
    ) -> pd.DataFrame:
        """One lake read when the partitions live in one place; else each partition from its own, in order
        (categorical columns stay categorical, as one scan reads them)."""
        homes = {id(self._home(asset_key, p)): self._home(asset_key, p) for p in partitions or []}
        if partitions is None or len(homes) <= 1:
            home = next(iter(homes.values()), self.lake)
            return home.read(asset_key, partitions, columns, missing_ok, categories)
        frames = [self._home(asset_key, p).read(asset_key, [p], columns, missing_ok, categories) for p in partitions]
        frame = pd.concat(frames, ignore_index=True)
        return frame.astype({name: "category" for name in categories if name in frame.columns})


@contextmanager
def feature_inputs(
    lake: DataLake,
    source: Callable[[], EventSource],
    spec: UseCaseSpec,
    raw_key: dg.AssetKey,
    days: Sequence[str],
    failed_here: Collection[str],
    first_day: str,
) -> Iterator[tuple[DataLake, dict[str, str]]]:
    """What the features of `days` read, and each borrowed raw day that cannot be used, saying why. Without
    `backfill.max_days_per_run` that is the lake as it is (one run holds the range). `failed_here`: raw days this
    step already failed (their own stage says why); `source`, called only when a day is borrowed; `first_day`, the
    first partition (no raw day before it is borrowed: the history starts there)."""
    if spec.backfill.max_days_per_run is None:  # one run holds the range: nothing to list or borrow
        yield lake, {}
        return
    stored = set(lake.existing_partitions(raw_key))
    wanted = [
        day
        for day in (feature_input_days(spec, days) if days else [])
        if day >= first_day and day not in stored and day not in failed_here
    ]
    if not wanted:
        yield lake, {}
        return
    with tempfile.TemporaryDirectory(prefix="ml-platform-lookback-") as directory:
        scratch = DataLake(base_path=directory)
        borrowed: set[str] = set()
        unusable: dict[str, str] = {}
        for result in steps.ingest(source(), spec, wanted):
            blocking = [outcome for outcome in result.outcomes if outcome.blocks]
            if blocking or not result.has_data:
                why = "; ".join(f"{outcome.check}: {outcome.message}" for outcome in blocking) or "no data"
                unusable[result.day] = (
                    f"{raw_key.to_user_string()} {result.day} is not in the lake and the source's copy is unusable "
                    f"({why})"
                )
            else:
                steps.store_day(scratch, raw_key, result)
                borrowed.add(result.day)
        # a LookbackLake answers every read build_features makes of a DataLake
        yield cast(DataLake, LookbackLake(lake, scratch, raw_key, frozenset(borrowed))), unusable
