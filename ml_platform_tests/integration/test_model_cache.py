"""The local model cache: a registered version loads once from MLflow, then from local disk, and only
while the registry still says it is the same model; a damaged entry is a miss, never a missing model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from ml_platform.models.sklearn_trainers import SklearnRandomForestTrainer
from ml_platform.resources.mlflow_resource import MlflowResource

FEATURES = pd.DataFrame(np.random.default_rng(0).normal(size=(400, 4)), columns=["a", "b", "c", "d"])


def register(mlflow: MlflowResource, seed: int) -> str:
    labels = pd.Series((FEATURES["a"] + seed * FEATURES["b"] > 0).astype(int))
    trainer = SklearnRandomForestTrainer(n_estimators=10, random_state=seed).fit(FEATURES, labels, pd.Series(["d"] * 400))
    tracking = mlflow.configure()
    with tracking.start_run(experiment_id=mlflow.experiment_id("cached")) as run:
        trainer.log_model("model", FEATURES.head(5), registered_model_name="cached")
    return run.info.run_id


def test_a_version_loads_from_the_cache_while_the_registry_says_it_is_the_same(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mlflow = MlflowResource(data_dir=str(tmp_path / "data"), model_cache_dir=str(cache))
    first_run = register(mlflow, seed=1)
    scores = mlflow.load_model("cached", "1").predict(FEATURES)
    assert len(list(cache.glob("*/identity.json"))) == 1

    artifact_root = Path(urlparse(mlflow.client().get_run(first_run).info.artifact_uri).path).parents[1]
    assert artifact_root.name == "artifacts" and (artifact_root.parent / "mlflow.db").exists()
    shutil.rmtree(artifact_root)  # every logged model is gone: only the cache can still answer for version 1
    np.testing.assert_array_equal(mlflow.load_model("cached", "1").predict(FEATURES), scores)

    register(mlflow, seed=2)
    second = mlflow.load_model("cached", "2").predict(FEATURES)
    assert len(list(cache.glob("*/identity.json"))) == 2 and not np.array_equal(second, scores)

    [entry] = [p.parent for p in cache.glob("*/identity.json") if '"version": "2"' in p.read_text()]
    (entry / "model.pkl").write_bytes(b"not a pickle")
    np.testing.assert_array_equal(mlflow.load_model("cached", "2").predict(FEATURES), second)  # from the registry
    np.testing.assert_array_equal(mlflow.load_model("cached", "2").predict(FEATURES), second)  # the rewritten entry


def test_without_a_cache_directory_nothing_is_written(tmp_path: Path) -> None:
    mlflow = MlflowResource(data_dir=str(tmp_path / "data"))
    register(mlflow, seed=1)
    assert mlflow.load_model("cached", "1").predict(FEATURES).shape == (400, 2)
    assert not list(tmp_path.rglob("identity.json"))


def test_sensors_in_parallel_threads_import_mlflow_once_and_all_get_their_answer(tmp_path: Path) -> None:
    """The daemon evaluates sensors in threads; their first registry calls race to import MLflow, whose
    circular imports once showed the losing thread a half-initialised module (a failed sensor tick)."""
    script = f"""
import threading
from ml_platform.resources.mlflow_resource import MlflowResource
answers, errors, start = [], [], threading.Barrier(16)
def ask():
    start.wait()
    try:
        answers.append(MlflowResource(data_dir={str(tmp_path)!r}).version_by_alias("churn", "champion"))
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=ask) for _ in range(16)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
assert not errors and answers == [None] * 16, (errors, answers)
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
