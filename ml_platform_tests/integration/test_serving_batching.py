"""Micro-batching never changes a score: for every model type the platform ships (a forest with category
encoders, the torch MLP, the bidirectional GRU, the pretrained text encoder), registered through the real
pipeline, concurrent requests scored through the serving path answer byte-identical scores to scoring alone (a forest's
every row alone; another type's each request alone); forests are in fact batched, the other types never are
(a torch model's rows differ in the last bits with the rows scored beside them)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from demo.generators import generators
from demo.landing import land_days
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.sources import EventSource
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.serving import BATCH_INVARIANT_TYPES, Batcher, ChampionScorer, _rows
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.integration.test_categories import categorical_spec
from ml_platform_tests.support.fixtures import START
from ml_platform_tests.support.fraud_csv import land_with_unknown_labels

SIZES = {"fraud": (60, 1_500), "prices": (130, 25), "news": (16, 30)}  # days, events per day (as test_use_cases)
REQUESTS = [1, 1, 3, 1, 7, 1, 2, 1, 1, 5, 1, 1, 4, 1, 1, 1]  # rows per request, sent by 16 threads at once


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, UseCaseSpec]]]:
    """One data dir with a champion of each model type."""
    root = tmp_path_factory.mktemp("batching") / "data"
    specs = {spec.name: spec for spec in load_specs() if spec.name in SIZES}
    specs["fraud_csv"] = categorical_spec()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(root))
        instance, source = dg.DagsterInstance.ephemeral(), EventSource(data_dir=str(root))
        days = {"fraud_csv": sorted(land_with_unknown_labels(root, share=0.1))}
        for name, (count, per_day) in SIZES.items():
            land_days(source.landing_dir(specs[name].source), generators()[name](START, count, per_day, 3))
            days[name] = [(START + dt.timedelta(days=i)).isoformat() for i in range(count)]
        defs = build_definitions(list(specs.values()))
        for name, spec in specs.items():
            assert materialize_stages(defs, spec, DAILY_STAGES[:2], instance, days[name]).success, name
            assert materialize_stages(defs, spec, TRAINING_STAGES, instance).success, name
        yield root, specs


@pytest.mark.parametrize("use_case", ["fraud_csv", "fraud", "prices", "news"])
def test_batched_scores_are_byte_identical_to_scoring_each_row_alone(
    trained: tuple[Path, dict[str, UseCaseSpec]], use_case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, specs = trained
    spec = specs[use_case]
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(root))
    batcher = Batcher(max_wait_s=0.005, max_rows=256)
    scorer = ChampionScorer(spec, default_resources()["mlflow"], batcher=batcher)
    loaded = scorer.refresh()
    assert loaded is not None and loaded.batchable == (spec.model.type in BATCH_INVARIANT_TYPES)

    lake = DataLake(base_path=str(root / "lake"))
    days = lake.existing_partitions(keys.features(spec))[-3:]  # prices has 25 series a day
    frame = lake.read(keys.features(spec), days)[loaded.features].head(sum(REQUESTS))
    rows = json.loads(frame.to_json(orient="records"))  # as a client sends them
    assert len(rows) == sum(REQUESTS), f"{use_case}: too few feature rows on {days}"
    starts = [sum(REQUESTS[:i]) for i in range(len(REQUESTS))]
    requests = [rows[start:start + count] for start, count in zip(starts, REQUESTS, strict=True)]
    # a forest: every row scored alone; another type: each request scored alone (its rows in one call, as
    # without batching: a torch model's rows already differ in the last bits with the rows beside them)
    alone = [scorer.answer(loaded.version, loaded.model.predict(_rows({"rows": part}, loaded)))
             for part in ([[row] for row in rows] if loaded.batchable else requests)]

    answers: list[dict | None] = [None] * len(REQUESTS)
    ready = threading.Barrier(len(REQUESTS))

    def send(index: int) -> None:
        ready.wait()
        answers[index] = scorer.score({"rows": requests[index]})

    for _attempt in range(5):  # the forest's batches must hold several requests at least once
        threads = [threading.Thread(target=send, args=(index,)) for index in range(len(REQUESTS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        served = [answer for request in answers for answer in _per_row(request)]
        expected = [answer for request in alone for answer in _per_row(request)]
        assert served == expected, f"{use_case}: a served score differs from the same rows scored alone"
        if not loaded.batchable or batcher.largest_batch > 1:
            break
    assert batcher.largest_batch > 1 if loaded.batchable else batcher.largest_batch == 0


def _per_row(answer: dict | None) -> list[tuple]:
    """(version, score, class, probabilities) of each row; floats compared exactly (==: the same bits)."""
    assert answer is not None
    count = len(answer["scores"])
    classes = answer.get("classes", [None] * count)
    probabilities = answer.get("probabilities", [None] * count)
    return [(answer["model_version"], answer["scores"][i], classes[i], probabilities[i]) for i in range(count)]
