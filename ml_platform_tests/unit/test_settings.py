"""Settings come from the environment in one module; a value the platform cannot use fails naming the variable."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from ml_platform import settings
from ml_platform.definitions import build_definitions, load_specs


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (settings.SENSOR_INTERVAL_ENV, "soon", "must be a whole number of seconds >= 1, got 'soon'"),
        (settings.SENSOR_INTERVAL_ENV, "0", "got '0'"),
        (settings.AUTOMATION_ENV, "sometimes", "must be 'stopped' or 'running', got 'sometimes'"),
        (settings.ENVIRONMENT_ENV, "docker", "must be 'local' or 'k8s', got 'docker'"),
        (settings.GPU_NODE_SELECTOR_ENV, "{pool: gpu}", "must be JSON (dict)"),
        (settings.GPU_TOLERATIONS_ENV, '{"key": "x"}', "must be a JSON list, got dict"),
        (settings.PARTITIONS_START_ENV, "2025-02-30", "must be a date as YYYY-MM-DD, got '2025-02-30'"),
        (settings.PARTITIONS_START_ENV, "20250201", "got '20250201'"),
        (settings.PARTITIONS_START_ENV, "yesterday", "got 'yesterday'"),
    ],
)
def test_a_bad_setting_fails_the_code_location_naming_the_variable(
    variable: str, value: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.SettingError, match=variable) as raised:
        build_definitions(load_specs())
    assert words in str(raised.value)


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for variable in (
        settings.SENSOR_INTERVAL_ENV,
        settings.AUTOMATION_ENV,
        settings.ENVIRONMENT_ENV,
        settings.LAKE_ENV,
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path))
    defaults = settings.Settings.from_env()
    assert defaults.sensor_interval(30) == 30 and not defaults.automation_running
    assert defaults.environment == "local" and defaults.lake_path == str(tmp_path / "lake")
    monkeypatch.setenv(settings.SENSOR_INTERVAL_ENV, "5")
    monkeypatch.setenv(settings.AUTOMATION_ENV, "RUNNING")
    overridden = settings.Settings.from_env()
    assert overridden.sensor_interval(30) == 5 and overridden.automation_running


def test_nothing_but_the_settings_module_reads_the_platform_environment() -> None:
    """One settings object: every other module gets its values from it (secrets come as dg.EnvVar)."""
    package = Path(settings.__file__).parent
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "settings.py" and re.search(r"os\.environ(\.get)?\(?\[?[\"']ML_PLATFORM_", path.read_text())
    )
    assert readers == [], readers


def test_the_model_cache_defaults_to_the_users_private_cache_never_the_shared_data_dir(tmp_path: Path) -> None:
    """Whoever writes a cache entry chooses what the next reader unpickles: the data directory is the volume
    every pod shares on Kubernetes, the user's cache directory (HOME=/tmp, a pod's emptyDir there) is not."""
    home = {"HOME": str(tmp_path / "home"), settings.DATA_DIR_ENV: str(tmp_path / "data")}
    defaults = settings.Settings.from_env(home)
    assert defaults.model_cache_dir == tmp_path / "home" / ".cache" / "ml_platform" / "models"
    assert defaults.model_cache_key_file == tmp_path / "home" / ".config" / "ml_platform" / "model_cache.key"
    xdg = settings.Settings.from_env(
        {**home, "XDG_CACHE_HOME": str(tmp_path / "xc"), "XDG_CONFIG_HOME": str(tmp_path / "xk")}
    )
    assert xdg.model_cache_dir == tmp_path / "xc" / "ml_platform" / "models"
    assert xdg.model_cache_key_file == tmp_path / "xk" / "ml_platform" / "model_cache.key"
    assert (
        settings.Settings.from_env({**home, "XDG_CACHE_HOME": "relative"}).model_cache_dir == defaults.model_cache_dir
    )
    assert settings.Settings.from_env({**home, settings.MODEL_CACHE_ENV: "off"}).model_cache_dir is None
    assert settings.Settings.from_env({**home, settings.MODEL_CACHE_ENV: ""}).model_cache_dir is None
    chosen = settings.Settings.from_env({**home, settings.MODEL_CACHE_ENV: str(tmp_path / "shared")})
    assert chosen.model_cache_dir == tmp_path / "shared"


def test_the_partitions_start_override_starts_every_later_use_case_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """ML_PLATFORM_PARTITIONS_START (the demo's first landed day): the daily assets, their jobs and checks start
    there, and a spec that starts later keeps its own start_date; the specs themselves are not edited."""
    from ml_platform.assets import keys

    specs = load_specs()
    monkeypatch.delenv(settings.PARTITIONS_START_ENV, raising=False)
    unset = build_definitions(specs)
    monkeypatch.setenv(settings.PARTITIONS_START_ENV, " 2025-03-01 ")
    overridden = build_definitions(specs)
    assert settings.Settings.from_env().partitions_start == dt.date(2025, 3, 1)
    for spec in specs:
        for key in (keys.raw_events(spec), keys.features(spec), keys.predictions(spec), keys.drift(spec)):
            before = unset.resolve_assets_def(key).partitions_def
            after = overridden.resolve_assets_def(key).partitions_def
            assert before.get_first_partition_key() == spec.start_date.isoformat(), key
            expected = max(spec.start_date, dt.date(2025, 3, 1)).isoformat()
            assert after.get_first_partition_key() == expected, key
            assert after.get_last_partition_key() == before.get_last_partition_key(), key
        daily_job = overridden.resolve_job_def(f"{spec.name}_daily")
        assert daily_job.partitions_def.get_first_partition_key() == expected, spec.name
    assert any(spec.start_date < dt.date(2025, 3, 1) for spec in specs)  # the override changed something
