"""The local model cache: a registered version loads once from MLflow, then from local disk, and only while
the registry still says it is the same model; an entry that does not verify under the deployment's key
(changed bytes, a planted pickle, another version's entry) is refused before it is unpickled, reported and
replaced from the registry."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_platform.models import model_cache
from ml_platform.models.sklearn_trainers import SklearnRandomForestTrainer
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import MlflowResource

FEATURES = pd.DataFrame(np.random.default_rng(0).normal(size=(400, 4)), columns=["a", "b", "c", "d"])
KEY = "k" * 32  # the deployment's ML_PLATFORM_MODEL_CACHE_KEY in these tests
ATTACKER_KEY = b"a" * 32  # someone who can write the cache directory but does not hold the key


def register(mlflow: MlflowResource, seed: int) -> str:
    labels = pd.Series((FEATURES["a"] + seed * FEATURES["b"] > 0).astype(int))
    trainer = SklearnRandomForestTrainer(n_estimators=10, random_state=seed).fit(
        FEATURES, labels, pd.Series(["d"] * 400)
    )
    tracking = mlflow.configure()
    with tracking.start_run(experiment_id=mlflow.experiment_id("cached")) as run:
        trainer.log_model("model", FEATURES.head(5), registered_model_name="cached")
    return run.info.run_id


def cached(data_dir: Path, cache: Path) -> MlflowResource:
    return MlflowResource(data_dir=str(data_dir), model_cache_dir=str(cache), model_cache_key=KEY)


def entry_of(cache: Path, version: str) -> Path:
    [entry] = [
        path
        for path in cache.glob("*.model")
        if json.loads(path.read_bytes().partition(b"\n")[0])["identity"]["version"] == version
    ]
    return entry


class RunsCode:
    """Unpickling this runs code: it creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A registry with versions 1 and 2 of `cached` and each version's scores, loaded without a cache."""
    data_dir = tmp_path_factory.mktemp("registry")
    plain = MlflowResource(data_dir=str(data_dir))
    register(plain, seed=1)
    register(plain, seed=2)
    return data_dir, {version: plain.load_model("cached", version).predict(FEATURES) for version in ("1", "2")}


def test_a_version_loads_from_the_cache_while_the_registry_says_it_is_the_same(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mlflow = cached(tmp_path / "data", cache)
    first_run = register(mlflow, seed=1)
    started = time.perf_counter()
    scores = mlflow.load_model("cached", "1").predict(FEATURES)
    from_registry = time.perf_counter() - started
    assert len(list(cache.glob("*.model"))) == 1

    artifact_root = Path(urlparse(mlflow.client().get_run(first_run).info.artifact_uri).path).parents[1]
    assert artifact_root.name == "artifacts" and (artifact_root.parent / "mlflow.db").exists()
    shutil.rmtree(artifact_root)  # every logged model is gone: only the cache can still answer for version 1
    started = time.perf_counter()
    np.testing.assert_array_equal(mlflow.load_model("cached", "1").predict(FEATURES), scores)
    from_cache = time.perf_counter() - started
    print(f"load from the registry {from_registry:.2f} s, from the cache {from_cache:.2f} s")

    register(mlflow, seed=2)
    second = mlflow.load_model("cached", "2").predict(FEATURES)
    assert len(list(cache.glob("*.model"))) == 2 and not np.array_equal(second, scores)


def test_an_entry_records_the_registry_artifact_it_was_loaded_from(tmp_path: Path, registry: tuple[Path, dict]) -> None:
    data_dir, _ = registry
    mlflow = cached(data_dir, tmp_path / "cache")
    mlflow.load_model("cached", "1")
    header = json.loads(entry_of(tmp_path / "cache", "1").read_bytes().partition(b"\n")[0])
    downloaded = Path(
        mlflow.configure().artifacts.download_artifacts(artifact_uri="models:/cached/1", dst_path=str(tmp_path / "dl"))
    )
    assert header["artifact_sha256"] == model_cache.artifact_sha256(downloaded)
    assert (downloaded / "MLmodel").exists() and len(header["hmac_sha256"]) == 64


def tamper_changed_bytes(entry: Path, other: Path, marker: Path) -> None:
    data = bytearray(entry.read_bytes())
    data[-20] ^= 0x01  # one bit of the pickle
    entry.write_bytes(bytes(data))


def tamper_planted_pickle_with_copied_header(entry: Path, other: Path, marker: Path) -> None:
    """Version 1's valid pickle under version 2's own header (identity, artifact digest and HMAC copied)."""
    header = entry.read_bytes().partition(b"\n")[0]
    entry.write_bytes(header + b"\n" + other.read_bytes().partition(b"\n")[2])


def tamper_whole_entry_of_another_version(entry: Path, other: Path, marker: Path) -> None:
    shutil.copyfile(other, entry)


def tamper_code_pickle_signed_with_another_key(entry: Path, other: Path, marker: Path) -> None:
    """A pickle that runs code, in the entry format, with a MAC under a key that is not the deployment's."""
    identity = json.loads(entry.read_bytes().partition(b"\n")[0])["identity"]
    model_cache._write(entry, ATTACKER_KEY, identity, "0" * 64, pickle.dumps(RunsCode(marker)))


def tamper_code_pickle_with_copied_header(entry: Path, other: Path, marker: Path) -> None:
    header = entry.read_bytes().partition(b"\n")[0]
    entry.write_bytes(header + b"\n" + pickle.dumps(RunsCode(marker)))


def tamper_no_header(entry: Path, other: Path, marker: Path) -> None:
    entry.write_bytes(pickle.dumps(RunsCode(marker)))


@pytest.mark.parametrize(
    "tamper",
    [
        tamper_changed_bytes,
        tamper_planted_pickle_with_copied_header,
        tamper_whole_entry_of_another_version,
        tamper_code_pickle_signed_with_another_key,
        tamper_code_pickle_with_copied_header,
        tamper_no_header,
    ],
    ids=lambda tamper: tamper.__name__.removeprefix("tamper_"),
)
def test_a_tampered_entry_is_refused_unexecuted_reported_and_reloaded_from_the_registry(
    tamper,
    tmp_path: Path,
    registry: tuple[Path, dict],
    caplog: pytest.LogCaptureFixture,
) -> None:
    data_dir, scores = registry
    cache, marker = tmp_path / "cache", tmp_path / "code_ran"
    mlflow = cached(data_dir, cache)
    mlflow.load_model("cached", "1")
    mlflow.load_model("cached", "2")
    entry, other = entry_of(cache, "2"), entry_of(cache, "1")
    good = entry.read_bytes()

    tamper(entry, other, marker)
    assert entry.read_bytes() != good
    with caplog.at_level(logging.WARNING, logger="dagster"):
        reloaded = mlflow.load_model("cached", "2")
    assert not marker.exists(), "the planted pickle ran"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and str(entry) in refusals[0] and "cached version 2" in refusals[0], refusals
    np.testing.assert_array_equal(reloaded.predict(FEATURES), scores["2"])

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dagster"):  # the rewritten entry verifies and serves
        np.testing.assert_array_equal(mlflow.load_model("cached", "2").predict(FEATURES), scores["2"])
    assert not caplog.records
    header = json.loads(entry.read_bytes().partition(b"\n")[0])
    assert {key: header[key] for key in ("identity", "artifact_sha256")} == {
        key: json.loads(good.partition(b"\n")[0])[key] for key in ("identity", "artifact_sha256")
    }


def test_the_code_pickle_does_run_when_unpickled_so_the_tests_above_can_fail(tmp_path: Path) -> None:
    pickle.loads(pickle.dumps(RunsCode(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


def test_entries_written_under_another_key_are_refused_and_the_refusal_is_in_the_run_log(
    tmp_path: Path,
    registry: tuple[Path, dict],
) -> None:
    """Another pod's or an attacker's key: the entry does not verify. Inside a step the refusal is a line of
    the run's event log."""
    data_dir, scores = registry
    cache = tmp_path / "cache"
    MlflowResource(data_dir=str(data_dir), model_cache_dir=str(cache), model_cache_key="x" * 32).load_model(
        "cached", "1"
    )

    @dg.asset
    def scores_of_version_1(mlflow: MlflowResource) -> None:
        np.testing.assert_array_equal(mlflow.load_model("cached", "1").predict(FEATURES), scores["1"])

    with dg.instance_for_test() as instance:
        result = dg.materialize([scores_of_version_1], resources={"mlflow": cached(data_dir, cache)}, instance=instance)
        assert result.success
        lines = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("refused" in line and "HMAC does not verify" in line for line in lines), lines


def test_without_a_deployment_key_a_private_key_file_is_created_once_and_reused(
    tmp_path: Path, registry: tuple[Path, dict]
) -> None:
    data_dir, scores = registry
    key_file = tmp_path / "config" / "model_cache.key"
    mlflow = MlflowResource(
        data_dir=str(data_dir), model_cache_dir=str(tmp_path / "cache"), model_cache_key_file=str(key_file)
    )
    mlflow.load_model("cached", "1")
    key = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(bytes.fromhex(key)) == 32
    np.testing.assert_array_equal(mlflow.load_model("cached", "1").predict(FEATURES), scores["1"])
    assert key_file.read_text() == key and len(list((tmp_path / "cache").glob("*.model"))) == 1


def test_the_deployment_key_from_the_environment_signs_entries_in_and_outside_runs(
    tmp_path: Path,
    registry: tuple[Path, dict],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`serve` and the CLI use the resources outside a run, where Dagster has not resolved the key's EnvVar."""
    data_dir, scores = registry
    cache = tmp_path / "cache"
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ML_PLATFORM_MODEL_CACHE", str(cache))
    monkeypatch.setenv("ML_PLATFORM_MODEL_CACHE_KEY", KEY)
    default_resources()["mlflow"].load_model("cached", "1")

    @dg.asset
    def scores_of_version_1(mlflow: MlflowResource) -> None:
        np.testing.assert_array_equal(mlflow.load_model("cached", "1").predict(FEATURES), scores["1"])

    with caplog.at_level(logging.WARNING, logger="dagster"):
        assert dg.materialize([scores_of_version_1], resources={"mlflow": default_resources()["mlflow"]}).success
        cached(data_dir, cache).load_model("cached", "1")
    assert not [r for r in caplog.records if "model cache" in r.getMessage()]
    assert len(list(cache.glob("*.model"))) == 1


def test_a_short_deployment_key_fails_naming_the_variable(tmp_path: Path, registry: tuple[Path, dict]) -> None:
    data_dir, _ = registry
    mlflow = MlflowResource(data_dir=str(data_dir), model_cache_dir=str(tmp_path / "cache"), model_cache_key="short")
    with pytest.raises(ValueError, match="ML_PLATFORM_MODEL_CACHE_KEY must be at least 32 characters"):
        mlflow.load_model("cached", "1")


def test_the_least_recently_used_entries_go_when_the_cache_outgrows_its_limit(
    tmp_path: Path,
    registry: tuple[Path, dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir, _ = registry
    cache = tmp_path / "cache"
    mlflow = cached(data_dir, cache)
    mlflow.load_model("cached", "1")
    one_entry = entry_of(cache, "1").stat().st_size
    os.utime(entry_of(cache, "1"), (time.time() - 100, time.time() - 100))
    monkeypatch.setattr(model_cache, "MAX_CACHE_BYTES", one_entry * 3 // 2)
    mlflow.load_model("cached", "2")  # written; version 1's older entry makes room
    assert [json.loads(p.read_bytes().partition(b"\n")[0])["identity"]["version"] for p in cache.glob("*.model")] == [
        "2"
    ]

    monkeypatch.setattr(model_cache, "MAX_CACHE_BYTES", 10 * one_entry)
    mlflow.load_model("cached", "1")
    os.utime(entry_of(cache, "1"), (time.time() - 100, time.time() - 100))
    os.utime(entry_of(cache, "2"), (time.time() - 50, time.time() - 50))
    mlflow.load_model("cached", "1")  # a read makes version 1 the most recently used
    model_cache._prune(cache, one_entry * 3 // 2)
    assert [json.loads(p.read_bytes().partition(b"\n")[0])["identity"]["version"] for p in cache.glob("*.model")] == [
        "1"
    ]


def test_without_a_cache_directory_nothing_is_written(tmp_path: Path) -> None:
    mlflow = MlflowResource(data_dir=str(tmp_path / "data"))
    register(mlflow, seed=1)
    assert mlflow.load_model("cached", "1").predict(FEATURES).shape == (400, 2)
    assert not list(tmp_path.rglob("*.model"))


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
