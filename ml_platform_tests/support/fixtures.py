"""Shared fixtures and helpers: an isolated data dir per test and one trained churn platform per session (built once
even under xdist: the first worker that needs it builds it under a file lock, the others read what it stored).

Registered as a plugin by ml_platform_tests/conftest.py; import the helpers (day_keys, landing_dir, ...) from here."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from filelock import FileLock

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


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store as MLflow creates it on first use, made once per test process: creating one
    runs MLflow's schema migrations (~1 s), copying it takes ~0.05 s. The demo, the tutorial and the server tests
    still have MLflow create theirs."""
    from mlflow.tracking import MlflowClient

    store = tmp_path_factory.mktemp("empty_mlflow_store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{store}").search_experiments()
    return store


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_store: Path) -> Path:
    """A fresh data dir for this test (ML_PLATFORM_DATA_DIR), its MLflow store there and still empty."""
    directory = tmp_path / "data"
    (directory / "mlflow").mkdir(parents=True)
    shutil.copyfile(empty_mlflow_store, directory / "mlflow" / "mlflow.db")
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


@dataclass(frozen=True)
class StoredRun:
    """What the tests read of an in-process run's result (its record and events), kept with Dagster's serdes so
    that every xdist worker reads the one build's runs. Same answers as dg.ExecuteInProcessResult's methods."""

    dagster_run: dg.DagsterRun
    all_events: list[dg.DagsterEvent]

    @property
    def run_id(self) -> str:
        return self.dagster_run.run_id

    @property
    def success(self) -> bool:
        return self.dagster_run.is_success

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [event for event in self.all_events if event.is_step_materialization]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [
            event.event_specific_data
            for event in self.all_events
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]

    def asset_materializations_for_node(self, node_name: str) -> list[dg.AssetMaterialization]:
        return [
            event.event_specific_data.materialization
            for event in self.get_asset_materialization_events()
            if event.node_name == node_name
        ]


class TrainedPlatform:
    """A data dir in which the churn graph has been fully materialized once; `results` are its three runs."""

    RESULTS_FILE = "results.json"  # written last: a platform without it was never finished

    def __init__(self, root: Path, spec: UseCaseSpec) -> None:
        self.root = root
        self.spec = spec
        self.days = day_keys()
        self.results: dict[str, StoredRun] = {}

    def build(self) -> None:
        write_landing_files(landing_dir(self.root), START, DAYS, EVENTS_PER_DAY, seed=3)
        runs: dict[str, dg.ExecuteInProcessResult] = {}
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ML_PLATFORM_DATA_DIR", str(self.root))
            defs = build_definitions(load_specs())
            instance = dg.DagsterInstance.ephemeral()
            runs["daily"] = materialize_stages(defs, self.spec, DAILY_STAGES[:2], instance, self.days)
            runs["training"] = materialize_stages(defs, self.spec, TRAINING_STAGES, instance)
            runs["predictions"] = materialize_stages(defs, self.spec, DAILY_STAGES[2:], instance, self.days)
        stored = {
            name: {"run": dg.serialize_value(run.dagster_run), "events": dg.serialize_value(list(run.all_events))}
            for name, run in runs.items()
        }
        scratch = self.root.parent / f".{self.RESULTS_FILE}"
        scratch.write_text(json.dumps(stored))
        os.replace(scratch, self.root.parent / self.RESULTS_FILE)

    def built(self) -> bool:
        return (self.root.parent / self.RESULTS_FILE).is_file()

    def load_results(self) -> None:
        stored = json.loads((self.root.parent / self.RESULTS_FILE).read_text())
        self.results = {
            name: StoredRun(dg.deserialize_value(run["run"], dg.DagsterRun), dg.deserialize_value(run["events"], list))
            for name, run in stored.items()
        }

    def copy_to(self, destination: Path) -> Path:
        shutil.copytree(self.root, destination)
        return destination


def session_shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session sees (the workers' base temp dirs are siblings);
    without xdist, the session's own base temp dir."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def trained_platform(tmp_path_factory: pytest.TempPathFactory, churn_spec: UseCaseSpec) -> TrainedPlatform:
    """Built by the first worker that needs it (~20 s), read by the others. Tests only read its data dir
    (`trained_copy` copies it for a test that changes anything), so the workers share one."""
    directory = session_shared_dir(tmp_path_factory) / "trained_platform"
    directory.mkdir(exist_ok=True)
    platform = TrainedPlatform(directory / "data", churn_spec)
    with FileLock(directory / "build.lock"):
        if not platform.built():
            shutil.rmtree(platform.root, ignore_errors=True)  # what a failed build left
            platform.build()
    platform.load_results()
    return platform


@pytest.fixture
def trained_copy(trained_platform: TrainedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the trained data dir, set as ML_PLATFORM_DATA_DIR for this test."""
    copy = trained_platform.copy_to(tmp_path / "data")
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(copy))
    yield copy


CLASSIFIER_PLOTS = {"roc_curve", "precision_recall_curve", "confusion_matrix", "calibration", "feature_importance"}
FORECAST_PLOTS = {"predicted_vs_actual", "residuals", "feature_importance"}


def assert_evaluation_plots(
    training: dg.ExecuteInProcessResult | StoredRun, node: str, expected: set[str], mlflow: object
) -> None:
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
