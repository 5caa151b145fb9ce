"""Settings come from the environment in one module; a value the platform cannot use fails naming the variable."""

from __future__ import annotations

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
