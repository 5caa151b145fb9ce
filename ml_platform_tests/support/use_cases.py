"""The fraud, prices and news platforms, each trained once per session (registered as a plugin by
ml_platform_tests/conftest.py): test_use_cases and test_news test them, test_serving_batching scores their
champions. Tests read a platform's data dir and copy it before changing anything in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from demo.generators import generators
from demo.generators.news import generate_news_events
from demo.landing import land_days
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.sources import EventSource
from ml_platform.runner import DAILY_STAGES, MONITORING_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform_tests.support.fixtures import START, day_keys

USE_CASE_SIZES = {"fraud": (60, 1_500), "prices": (130, 25)}  # days, events per day
NEWS_DAYS, ARTICLES_PER_DAY = 16, 30


class UseCasePlatform:
    """One use case landed, backfilled, trained and scored in its own data dir."""

    def __init__(self, root: Path, name: str, days: int, events_per_day: int) -> None:
        self.root, self.name = root, name
        self.days = day_keys(count=days)
        self.spec = next(spec for spec in load_specs() if spec.name == name)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ML_PLATFORM_DATA_DIR", str(root))
            land_days(
                EventSource(data_dir=str(root)).landing_dir(self.spec.source),
                generators()[name](START, days, events_per_day, 3),
            )
            defs = build_definitions(load_specs())
            instance = dg.DagsterInstance.ephemeral()
            self.daily = materialize_stages(defs, self.spec, DAILY_STAGES[:2], instance, self.days)
            self.training = materialize_stages(defs, self.spec, TRAINING_STAGES, instance)
            self.predictions = materialize_stages(defs, self.spec, DAILY_STAGES[2:], instance, self.days[-3:])
        self.lake = DataLake(base_path=str(root / "lake"))
        self.summary = self.lake.read_json(keys.model(self.spec)) if self.training.success else None


class NewsPlatform:
    """Sixteen days of news landed, ingested, the encoder registered and promoted, the last days scored and reported."""

    def __init__(self, root: Path) -> None:
        self.root, self.days = root, day_keys(count=NEWS_DAYS)
        self.spec = next(spec for spec in load_specs() if spec.name == "news")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ML_PLATFORM_DATA_DIR", str(root))
            land_days(
                EventSource(data_dir=str(root)).landing_dir(self.spec.source),
                generate_news_events(START, NEWS_DAYS, ARTICLES_PER_DAY, 5),
            )
            self.defs = build_definitions(load_specs())
            self.instance = dg.DagsterInstance.ephemeral()
            self.daily = materialize_stages(self.defs, self.spec, DAILY_STAGES[:2], self.instance, self.days)
            self.training = materialize_stages(self.defs, self.spec, TRAINING_STAGES, self.instance)
            self.scored = materialize_stages(
                self.defs, self.spec, [DAILY_STAGES[2], *MONITORING_STAGES, "report"], self.instance, self.days[-3:]
            )
            self.mlflow = default_resources()["mlflow"]
        self.lake = DataLake(base_path=str(root / "lake"))


@pytest.fixture(scope="session")
def use_case_platform(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], UseCasePlatform]:
    """`use_case_platform("fraud")`: that platform, built on the first call of the session."""
    built: dict[str, UseCasePlatform] = {}

    def get(name: str) -> UseCasePlatform:
        if name not in built:
            days, events = USE_CASE_SIZES[name]
            built[name] = UseCasePlatform(tmp_path_factory.mktemp(name) / "data", name, days, events)
        return built[name]

    return get


@pytest.fixture(scope="session")
def news_platform(tmp_path_factory: pytest.TempPathFactory) -> NewsPlatform:
    return NewsPlatform(tmp_path_factory.mktemp("news") / "data")
