"""Every registered model type loads where the platform is not installed.

A tiny model of each type (a forest with all three category encodings, the torch MLP, the torch GRU, the
pretrained text model) is trained by the platform's own trainers and registered by their own `log_model`
in a file-based MLflow store. Then, in a fresh virtualenv that installs only that model's
`requirements.txt` (support/model_venvs.py: one venv per requirements set, cached across sessions),
`mlflow.pyfunc.load_model` loads it and scores its input example exactly as the platform does; and
`mlflow models serve` run from that venv answers the churn champion's input example over HTTP.

Runtime alone (2 cores): cold, building the three venvs (uv's cache warm from `make install`), 123 s (175 s
while uv compiled every module's bytecode); warm 66 s. The venvs take about 3.3 GB (sklearn 0.5, torch 1.2,
text 1.6).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from ml_platform.models import shipping, sklearn_trainers
from ml_platform.models.base import Trainer
from ml_platform.models.portable import encoders as portable_encoders
from ml_platform.models.portable import torch_modules
from ml_platform.models.trainers import build_trainer
from ml_platform_tests.support.model_venvs import clean_env, model_venv
from ml_platform_tests.support.polling import poll_until
from ml_platform_tests.support.servers import free_port, kill_process_group, spawn

DAYS = pd.Series(np.repeat([f"2025-01-{day:02d}" for day in range(1, 5)], 50))
RNG = np.random.default_rng(0)
FILE_STORE = {"MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3.17 keeps the file store behind this switch

# in the venv: the platform must not be importable; load, score the logged input example, say where the code came from
SCORE = """
import importlib.util, json, sys
assert importlib.util.find_spec("ml_platform") is None, "the platform is importable in the model's venv"
import mlflow, numpy as np
model = mlflow.pyfunc.load_model(sys.argv[1])
scores = np.asarray(model.predict(model.input_example), dtype=float)
code = sorted(
    module.__file__ for name, module in sys.modules.items() if name.startswith("ml_platform.models.portable.")
)
with open(sys.argv[2], "w") as out:
    json.dump({"scores": scores.tolist(), "code": code}, out)
"""


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    trainer: Trainer
    example: pd.DataFrame  # the input example, as the trainer was given it


def _fraud_like() -> tuple[pd.DataFrame, pd.Series]:
    features = pd.DataFrame(RNG.normal(size=(len(DAYS), 3)), columns=["amount", "velocity", "age"])
    return features, (features["amount"] + 0.3 * RNG.normal(size=len(DAYS)) > 0.5).astype("int64")


def _churn_like() -> tuple[pd.DataFrame, pd.Series]:
    n = len(DAYS)
    features = pd.DataFrame(
        {
            "plan": pd.array(RNG.choice(["basic", "plus", "pro", "team"], n), dtype="string"),
            "region": pd.array(RNG.choice(["north", "south", "east"], n), dtype="string"),
            "channel": pd.array(RNG.choice(["web", "app", "shop"], n), dtype="string"),
            "tenure": RNG.integers(1, 60, n).astype("float64"),
        }
    )
    features.loc[3, "region"] = pd.NA  # a missing category is a value of its own
    features.loc[4, "plan"] = "unseen-plan"  # a value the encoders never saw
    labels = ((features["plan"] == "basic") ^ (features["tenure"] > 30)).astype("int64")
    return features, labels


def _prices_like() -> tuple[pd.DataFrame, pd.Series]:
    walk = 100 + np.cumsum(RNG.normal(size=len(DAYS) + 6))
    lags = pd.DataFrame({f"lag_{k}": walk[6 - k : 6 - k + len(DAYS)] for k in range(1, 6)})
    return lags, pd.Series(walk[6 : 6 + len(DAYS)])


def _news_like() -> tuple[pd.DataFrame, pd.Series]:
    texts = [
        "the striker scored twice in the final",
        "a new chip doubles laptop battery life",
        "the keeper saved a penalty",
        "the phone maker ships a faster processor",
    ] * (len(DAYS) // 4)
    return pd.DataFrame({"text": texts}), pd.Series(["sports", "tech"] * (len(DAYS) // 2))


def _register(name: str, trainer: Trainer, features: pd.DataFrame, labels: pd.Series) -> Registered:
    trainer.fit(features, labels, DAYS)
    example = features.head(6)
    with mlflow.start_run():
        info = trainer.log_model("model", example, registered_model_name=name)
    return Registered(name, str(info.registered_model_version), trainer, example)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Registered]]]:
    """A file-based MLflow store with one registered model per type; churn's is its champion."""
    uri = (tmp_path_factory.mktemp("portable") / "mlruns").as_uri()
    with pytest.MonkeyPatch.context() as env:
        for key in [
            key for key in os.environ if key.startswith("MLFLOW_")
        ]:  # an earlier test's store, exported by MLflow
            env.delenv(key)
        for key, value in FILE_STORE.items():
            env.setenv(key, value)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield uri, _register_all()
        mlflow.set_registry_uri(None)
        mlflow.set_tracking_uri(None)


def _register_all() -> dict[str, Registered]:
    models = {
        "churn": _register(
            "churn",
            build_trainer(
                "sklearn_random_forest",
                {"n_estimators": 8, "max_depth": 4},
                {"plan": ("one_hot", 2), "region": ("frequency", 20), "channel": ("target", 20)},
            ),
            *_churn_like(),
        ),
        "fraud": _register("fraud", build_trainer("torch_mlp", {"hidden": [4], "epochs": 2}), *_fraud_like()),
        "prices": _register("prices", build_trainer("torch_birnn", {"hidden": 4, "epochs": 2}), *_prices_like()),
        "news": _register(
            "news",
            build_trainer(
                "pretrained_text",
                {
                    "descriptions": {
                        "sports": "football match, goals and players",
                        "tech": "computers, chips and phones",
                    }
                },
                classes=["sports", "tech"],
            ),
            *_news_like(),
        ),
    }
    mlflow.MlflowClient().set_registered_model_alias("churn", "champion", models["churn"].version)
    return models


def platform_scores(model: Registered) -> np.ndarray:
    """What the platform scores the input example with: the registered model loaded here, checked against the
    trainer's own scores (a forest's pyfunc answers both class probabilities, the platform scores class 1; a torch
    module's, one column)."""
    loaded = np.asarray(
        mlflow.pyfunc.load_model(f"models:/{model.name}/{model.version}").predict(model.example), dtype=float
    )
    own = model.trainer.predict(model.example)
    np.testing.assert_allclose(
        loaded[:, 1] if model.trainer.flavor == "sklearn" else loaded.reshape(own.shape), own, rtol=1e-6
    )
    return loaded


def requirements(uri: str, model: Registered) -> Path:
    mlflow.set_tracking_uri(uri)
    return Path(mlflow.pyfunc.get_model_dependencies(f"models:/{model.name}/{model.version}", format="pip"))


@pytest.mark.parametrize("name", ["churn", "fraud", "prices", "news"])
def test_a_registered_model_loads_and_scores_in_a_venv_of_its_own_requirements(
    registry: tuple[str, dict[str, Registered]],
    name: str,
    tmp_path: Path,
) -> None:
    uri, models = registry
    model = models[name]
    venv = model_venv(requirements(uri, model))
    result = tmp_path / "scores.json"
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCORE, f"models:/{name}/{model.version}", str(result)],
        cwd=tmp_path,
        env=clean_env(venv, MLFLOW_TRACKING_URI=uri, **FILE_STORE),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    answer = json.loads(result.read_text())
    np.testing.assert_array_equal(np.asarray(answer["scores"]), platform_scores(model))
    # the model's classes came from the code shipped inside the model
    assert answer["code"] and all("/code/ml_platform/models/portable/" in path for path in answer["code"]), answer[
        "code"
    ]


def test_mlflow_models_serve_answers_the_champions_input_example(
    registry: tuple[str, dict[str, Registered]],
    tmp_path: Path,
) -> None:
    """`mlflow models serve --env-manager local`, run from the model's own venv: that venv is the model's
    environment. The other managers build a second one from the same requirements (virtualenv through pyenv
    and the `virtualenv` package; uv and conda are not installed here)."""
    uri, models = registry
    venv = model_venv(requirements(uri, models["churn"]))
    port = free_port()
    server = spawn(
        [
            str(venv / "bin" / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/churn@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        clean_env(venv, MLFLOW_TRACKING_URI=uri, **FILE_STORE),
        tmp_path / "serve.log",
        tmp_path,
    )
    try:
        poll_until(
            lambda: _ping(port),
            "mlflow models serve answering /ping",
            timeout=180,
            alive=lambda: _running(server),
            details=lambda: (tmp_path / "serve.log").read_text()[-3000:],
        )
        example = models["churn"].example
        payload = json.loads(example.to_json(orient="split", index=False))
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_split": payload}, timeout=60)
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(
            np.asarray(response.json()["predictions"], dtype=float), platform_scores(models["churn"])
        )
    finally:
        kill_process_group(server)


# the models-from-code file that registered text models carry since before the move (stored with each model)
OLD_TEXT_MODEL_CODE = """
import mlflow
from ml_platform.models.text_trainers import ZeroShotTextModel
mlflow.models.set_model(ZeroShotTextModel())
"""


def test_models_registered_before_the_move_still_load_in_the_platform(
    registry: tuple[str, dict[str, Registered]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Older models name the platform's classes by their old modules (torch_trainers, encoders, text_trainers)
    and carry no code: logged here with exactly those names, they load and score as the new ones do."""
    _, models = registry
    for cls in (torch_modules.StandardizedMLP, torch_modules.BiGRUForecaster):
        monkeypatch.setattr(cls, "__module__", "ml_platform.models.torch_trainers")
    for member in (portable_encoders.FrequencyEncoder, portable_encoders.as_objects):
        monkeypatch.setattr(member, "__module__", "ml_platform.models.encoders")
    monkeypatch.setattr(
        sklearn_trainers,
        "OWN_ENCODER_TYPES",
        ["ml_platform.models.encoders.FrequencyEncoder", "ml_platform.models.encoders.as_objects"],
    )
    monkeypatch.setattr(shipping, "portable_code", lambda *modules: contextlib.nullcontext(None))
    for name in ("churn", "fraud", "prices"):
        model = models[name]
        with mlflow.start_run():
            info = model.trainer.log_model("model", model.example, registered_model_name=f"old-{name}")
        old = Registered(f"old-{name}", str(info.registered_model_version), model.trainer, model.example)
        assert not (
            Path(mlflow.pyfunc.get_model_dependencies(f"models:/{old.name}/{old.version}")).parent / "code"
        ).exists()
        np.testing.assert_array_equal(platform_scores(old), platform_scores(model))

    news = models["news"]
    code = tmp_path / "text_model_code.py"
    code.write_text(OLD_TEXT_MODEL_CODE)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            model_config=news.trainer.config,
            registered_model_name="old-news",
            pip_requirements=["mlflow"],
        )
    old_news = Registered("old-news", str(info.registered_model_version), news.trainer, news.example.astype(str))
    np.testing.assert_array_equal(platform_scores(old_news), platform_scores(news))


def _running(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        raise AssertionError(f"mlflow models serve exited with {server.returncode}")


def _ping(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
