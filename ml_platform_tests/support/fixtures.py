"""Shared fixtures and helpers: an isolated data dir per test and one trained churn platform per session.

Registered as a plugin by ml_platform_tests/conftest.py; import the helpers (day_keys, landing_dir, ...) from here."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from demo.generators.churn import write_landing_files
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.webhook import Webhook

UI_URL = "http://dagster.example:3000"

START = dt.date(2025, 1, 1)
DAYS = 64
EVENTS_PER_DAY = 1_500


def day_keys(start: dt.date = START, count: int = DAYS) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


@pytest.fixture(autouse=True)
def _no_remote_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ML_PLATFORM_LAKE", raising=False)
    monkeypatch.delenv("ML_PLATFORM_SPECS_DIR", raising=False)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(directory))
    return directory


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty instance for CLI commands run in this test (they use $DAGSTER_HOME, as a user's shell does)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    with Webhook() as hook:
        monkeypatch.setenv("ML_PLATFORM_ALERT_WEBHOOK", hook.url)
        monkeypatch.setenv("ML_PLATFORM_UI_URL", UI_URL)
        yield hook


@pytest.fixture(scope="session")
def churn_spec() -> UseCaseSpec:
    return next(spec for spec in load_specs() if spec.name == "churn")


def landing_dir(data: Path) -> Path:
    return data / "landing" / "churn"


class TrainedPlatform:
    """A data dir in which the churn graph has been fully materialized once."""

    def __init__(self, root: Path, spec: UseCaseSpec) -> None:
        self.root = root
        self.spec = spec
        self.days = day_keys()
        self.results: dict[str, dg.ExecuteInProcessResult] = {}

    def build(self) -> None:
        write_landing_files(landing_dir(self.root), START, DAYS, EVENTS_PER_DAY, seed=3)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ML_PLATFORM_DATA_DIR", str(self.root))
            defs = build_definitions(load_specs())
            instance = dg.DagsterInstance.ephemeral()
            self.results["daily"] = materialize_stages(defs, self.spec, DAILY_STAGES[:2], instance, self.days)
            self.results["training"] = materialize_stages(defs, self.spec, TRAINING_STAGES, instance)
            self.results["predictions"] = materialize_stages(defs, self.spec, DAILY_STAGES[2:], instance, self.days)

    def copy_to(self, destination: Path) -> Path:
        shutil.copytree(self.root, destination)
        return destination


@pytest.fixture(scope="session")
def trained_platform(tmp_path_factory: pytest.TempPathFactory, churn_spec: UseCaseSpec) -> TrainedPlatform:
    platform = TrainedPlatform(tmp_path_factory.mktemp("trained") / "data", churn_spec)
    platform.build()
    return platform


@pytest.fixture
def trained_copy(trained_platform: TrainedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the trained data dir, set as ML_PLATFORM_DATA_DIR for this test."""
    copy = trained_platform.copy_to(tmp_path / "data")
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(copy))
    yield copy


CLASSIFIER_PLOTS = {"roc_curve", "precision_recall_curve", "confusion_matrix", "calibration", "feature_importance"}
FORECAST_PLOTS = {"predicted_vs_actual", "residuals", "feature_importance"}


def assert_evaluation_plots(training: dg.ExecuteInProcessResult, node: str, expected: set[str], mlflow: object) -> None:
    """The model asset shows every evaluation plot as an embedded PNG, and MLflow holds the same PNGs."""
    import base64

    metadata = training.asset_materializations_for_node(node)[0].metadata
    for name in expected:
        text = metadata[f"plot_{name}"].value
        prefix = f"![{name}](data:image/png;base64,"
        assert text.startswith(prefix), text[:80]
        assert base64.b64decode(text[len(prefix) : -1]).startswith(b"\x89PNG"), name
    run_id = metadata["mlflow_run"].value.rsplit("/", 1)[1]
    client = mlflow.client()  # type: ignore[attr-defined]
    artifacts = {Path(a.path).name: a.file_size for a in client.list_artifacts(run_id, "evaluation")}
    assert {f"{name}.png" for name in expected} <= set(artifacts), artifacts
    assert all(artifacts[f"{name}.png"] > 1_000 for name in expected), artifacts
    assert "permutation_importance.json" in artifacts
    run = client.get_run(run_id)
    assert run.data.tags["dagster_run_url"].endswith(f"/runs/{training.run_id}")
    assert training.run_id in run.data.tags["mlflow.note.content"]
