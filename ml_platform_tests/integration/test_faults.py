"""Faults injected for real: a registry that errors, an MLflow that is not there, a lake that cannot be
written, a symlink out of the landing directory. Each time the run fails with the cause, nothing is
half-written, the champion does not move, and a re-run completes. (Faults that need real webserver and
daemon processes are in e2e/test_faults_servers.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.definitions import build_definitions, load_specs
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.faults import FaultProxy, mlflow_server
from ml_platform_tests.support.fixtures import landing_dir
from ml_platform_tests.support.servers import free_port

RECENT = ["2025-03-04", "2025-03-05"]


def failure_message(result: dg.ExecuteInProcessResult, node: str) -> str:
    failure = result.failure_data_for_node(node)
    assert failure is not None, f"{node} did not fail"
    return failure.user_failure_data.description if failure.user_failure_data else failure.error.message


def champion_version(data: Path) -> str:
    """The champion as the local store says, read without any proxy in the way."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("ML_PLATFORM_DATA_DIR", str(data))
        return str(default_resources()["mlflow"].version_by_alias("churn", CHAMPION).version)


def test_a_registry_error_never_promotes_and_predictions_say_the_registry_is_unavailable(
    trained_copy: Path, churn_spec: UseCaseSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion-alias lookup fails (503 from a proxy in front of a real MLflow server) while every other
    registry call works: the model step fails naming the registry, and the champion stays where it was."""
    before = champion_version(trained_copy)
    defs, instance = build_definitions(load_specs()), dg.DagsterInstance.ephemeral()
    with mlflow_server(trained_copy / "mlflow" / "mlflow.db", tmp_path) as server, FaultProxy(server) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        proxy.failing = ("/registered-models/get", "/registered-models/alias")  # however the alias is looked up
        retrained = materialize_stages(build_definitions(load_specs()), churn_spec, TRAINING_STAGES, instance)
        assert not retrained.success and proxy.refused
        message = failure_message(retrained, "churn__model")
        assert f"MLflow registry at {proxy.url} is unavailable" in message and "503" in message, message
        assert not [e for e in retrained.all_events if e.event_type_value == "STEP_RESTARTED"], "not retried"
        assert champion_version(trained_copy) == before

        scored = materialize_stages(defs, churn_spec, ["predictions"], instance, RECENT)
        message = failure_message(scored, "churn__daily")
        assert "is unavailable" in message and "no model has alias" not in message, message

        proxy.failing = ()  # the registry is back: the same runs complete
        assert materialize_stages(defs, churn_spec, ["predictions"], instance, RECENT).success
    assert champion_version(trained_copy) == before


def test_an_unreachable_mlflow_fails_training_within_a_minute_naming_it(
    trained_copy: Path, churn_spec: UseCaseSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", nowhere)
    started = time.monotonic()
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, TRAINING_STAGES, dg.DagsterInstance.ephemeral()
    )
    took = time.monotonic() - started
    assert not result.success and took < 60, took
    message = failure_message(result, "churn__model")
    assert f"MLflow registry at {nowhere} is unavailable" in message, message


def test_a_failed_lake_write_leaves_no_temporary_file_and_the_old_file_intact(tmp_path: Path) -> None:
    """A write that runs out of room (the kernel's file-size limit: EFBIG, as a full disk gives ENOSPC) fails
    once, with errno and path, removes its temporary file, and the day's previous file is untouched."""
    lake = tmp_path / "lake"
    script = f"""
import resource, signal, sys
import dagster as dg, numpy as np, pandas as pd
from ml_platform.io.parquet_lake import DataLake
lake = DataLake(base_path={str(lake)!r})
key = dg.AssetKey(["churn", "raw_events"])
lake.write_partition(key, "2025-01-01", pd.DataFrame({{"x": [1, 2, 3]}}))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the limit then fails write() with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    lake.write_partition(key, "2025-01-01", pd.DataFrame({{"x": np.random.default_rng(0).random(1_000_000)}}))
except dg.Failure as failure:
    print(failure.description)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "[EFBIG]" in done.stdout and "raw_events/2025-01-01.parquet" in done.stdout and "not retried" in done.stdout
    day_dir = lake / "churn" / "raw_events"
    assert sorted(p.name for p in day_dir.iterdir()) == ["2025-01-01.parquet"], "no temporary file left"
    assert pd.read_parquet(day_dir / "2025-01-01.parquet")["x"].tolist() == [1, 2, 3]


def test_an_unwritable_lake_fails_the_step_once_with_the_cause(data_dir: Path, churn_spec: UseCaseSpec) -> None:
    from demo.generators.churn import write_landing_files

    write_landing_files(landing_dir(data_dir), pd.Timestamp("2025-01-01").date(), 2, 200, seed=1)
    (data_dir / "lake" / "churn").mkdir(parents=True)
    (data_dir / "lake" / "churn" / "raw_events").write_text("not a directory")  # a broken lake root
    result = materialize_stages(
        build_definitions(load_specs()),
        churn_spec,
        ["raw_events"],
        dg.DagsterInstance.ephemeral(),
        ["2025-01-01", "2025-01-02"],
    )
    message = failure_message(result, "churn__daily")
    assert "cannot write" in message and "raw_events/2025-01-01.parquet" in message and "permanent" in message, message
    assert ("[ENOTDIR]" in message) or ("[EEXIST]" in message), message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"], (
        "a permanent error is not retried"
    )


def test_a_backfill_never_reads_a_symlink_that_leaves_the_landing_directory(
    trained_copy: Path, churn_spec: UseCaseSpec, tmp_path: Path
) -> None:
    day = "2025-02-20"
    outside = tmp_path / "elsewhere.parquet"
    landed = landing_dir(trained_copy) / f"{day}.parquet"
    outside.write_bytes(landed.read_bytes())
    landed.unlink()
    landed.symlink_to(outside)
    raw_file = trained_copy / "lake" / "churn" / "raw_events" / f"{day}.parquet"
    kept = raw_file.read_bytes()
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, ["raw_events"], dg.DagsterInstance.ephemeral(), ["2025-02-19", day]
    )
    assert not result.success
    [refused] = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert (refused.check_name, refused.partition) == ("landed", day)
    assert "outside the landing directory" in refused.description and "it is not read" in refused.description
    assert raw_file.read_bytes() == kept


def test_recomputing_a_day_gives_byte_identical_files(trained_copy: Path, churn_spec: UseCaseSpec) -> None:
    """Idempotent backfills: the same landed data, code and champion give the same bytes for every daily asset."""
    day, lake = "2025-03-05", trained_copy / "lake" / "churn"
    defs, instance = build_definitions(load_specs()), dg.DagsterInstance.ephemeral()
    stages = ["raw_events", "features", "predictions", "drift"]
    assert materialize_stages(defs, churn_spec, stages, instance, [day]).success
    first = {stage: (lake / stage / f"{day}.parquet").read_bytes() for stage in stages}
    assert materialize_stages(defs, churn_spec, stages, instance, [day]).success
    assert {stage: (lake / stage / f"{day}.parquet").read_bytes() == first[stage] for stage in stages} == dict.fromkeys(
        stages, True
    )


def test_with_mlflow_authentication_only_the_platform_can_move_the_champion(
    trained_copy: Path, churn_spec: UseCaseSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's basic-auth app (as the Helm chart runs it): anonymous requests are refused, a read-only user
    cannot move the champion alias, and the platform, with its credentials in the environment, trains,
    gates and scores as usual."""
    import requests

    admin_password = "platform-Passw0rd-xyz"
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'basic_auth.db'}\n"
        f"admin_username = platform\nadmin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    with mlflow_server(trained_copy / "mlflow" / "mlflow.db", tmp_path, auth_config=ini) as server:
        assert requests.get(f"{server}/health", timeout=10).status_code == 200, "probes need no login"
        alias = {"name": "churn", "alias": "champion", "version": "1"}
        anonymous = requests.post(f"{server}/api/2.0/mlflow/registered-models/alias", json=alias, timeout=10)
        assert anonymous.status_code == 401
        created = requests.post(
            f"{server}/api/2.0/mlflow/users/create",
            json={"username": "reader", "password": "reader-Passw0rd"},
            auth=("platform", admin_password),
            timeout=10,
        )
        assert created.status_code == 200, created.text
        reader = requests.post(
            f"{server}/api/2.0/mlflow/registered-models/alias",
            json=alias,
            auth=("reader", "reader-Passw0rd"),
            timeout=10,
        )
        assert reader.status_code == 403, reader.text

        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
        defs, instance = build_definitions(load_specs()), dg.DagsterInstance.ephemeral()
        refused = materialize_stages(defs, churn_spec, ["predictions"], instance, RECENT)
        assert "401" in failure_message(refused, "churn__daily") or "nauthorized" in failure_message(
            refused, "churn__daily"
        )

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "platform")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
        assert materialize_stages(defs, churn_spec, ["predictions"], instance, RECENT).success
        retrained = materialize_stages(defs, churn_spec, TRAINING_STAGES, instance)
        model = {e.check_name: e.passed for e in retrained.get_asset_check_evaluations()}
        assert set(model) == {"meets_thresholds", "significantly_better_than_champion"}, (
            "trained and gated through auth"
        )
        assert retrained.asset_materializations_for_node("churn__model"), "the challenger was logged and registered"
        logged = "\n".join(str(event) for event in retrained.all_events)
    assert admin_password not in logged


def test_a_directory_named_like_a_day_file_is_refused_as_not_a_file(
    trained_copy: Path, churn_spec: UseCaseSpec
) -> None:
    day = "2025-02-21"
    landed = landing_dir(trained_copy) / f"{day}.parquet"
    landed.unlink()
    landed.mkdir()
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, ["raw_events"], dg.DagsterInstance.ephemeral(), [day]
    )
    [refused] = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert refused.check_name == "landed" and "is not a regular file" in refused.description, refused.description
