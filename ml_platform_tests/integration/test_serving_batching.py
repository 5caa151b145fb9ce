"""Micro-batching never changes a score: for every model type the platform ships (a forest with category
encoders, the torch MLP, the bidirectional GRU, the pretrained text encoder), registered through the real
pipeline, concurrent requests scored through the serving path answer byte-identical scores to scoring alone (a forest's
every row alone; another type's each request alone); forests are in fact batched, the other types never are
(a torch model's rows differ in the last bits with the rows scored beside them)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.serving import BATCH_INVARIANT_TYPES, Batcher, ChampionScorer, _rows
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.integration.test_categories import categorical_spec
from ml_platform_tests.support.fraud_csv import land_with_unknown_labels
from ml_platform_tests.support.use_cases import NewsPlatform, UseCasePlatform

REQUESTS = [1, 1, 3, 1, 7, 1, 2, 1, 1, 5, 1, 1, 4, 1, 1, 1]  # rows per request, sent by 16 threads at once


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    use_case_platform: Callable[[str], UseCasePlatform],
    news_platform: NewsPlatform,
) -> dict[str, tuple[Path, UseCaseSpec]]:
    """The data dir and spec of a champion of each model type: the forest trained here, the others the
    session's fraud, prices and news platforms (only read)."""
    root = tmp_path_factory.mktemp("batching") / "data"
    spec = categorical_spec()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(root))
        days = sorted(land_with_unknown_labels(root, share=0.1))
        defs, instance = build_definitions([spec]), dg.DagsterInstance.ephemeral()
        assert materialize_stages(defs, spec, DAILY_STAGES[:2], instance, days).success
        assert materialize_stages(defs, spec, TRAINING_STAGES, instance).success
    platforms = {name: use_case_platform(name) for name in ("fraud", "prices")}
    return {
        "fraud_csv": (root, spec),
        "news": (news_platform.root, news_platform.spec),
        **{name: (platform.root, platform.spec) for name, platform in platforms.items()},
    }


@pytest.mark.parametrize("use_case", ["fraud_csv", "fraud", "prices", "news"])
def test_batched_scores_are_byte_identical_to_scoring_each_row_alone(
    trained: dict[str, tuple[Path, UseCaseSpec]], use_case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, spec = trained[use_case]
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
    requests = [rows[start : start + count] for start, count in zip(starts, REQUESTS, strict=True)]
    # a forest: every row scored alone; another type: each request scored alone (its rows in one call, as
    # without batching: a torch model's rows already differ in the last bits with the rows beside them)
    alone = [
        scorer.answer(loaded.version, loaded.model.predict(_rows({"rows": part}, loaded)))
        for part in ([[row] for row in rows] if loaded.batchable else requests)
    ]

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
