"""`ml-platform serve`'s settings: workers, threads and batching from the environment, a bad value refused
naming the variable before anything starts."""

from __future__ import annotations

import pytest

from ml_platform import settings
from ml_platform.cli import main as cli


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (settings.SERVE_WORKERS_ENV, "0"),
        (settings.SERVE_THREADS_ENV, "many"),
        (settings.SERVE_BATCH_WAIT_ENV, "6"),
        (settings.SERVE_MAX_BATCH_ENV, "-1"),
    ],
)
def test_a_bad_serve_setting_fails_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert cli(["serve", "churn", "--port", "1"]) == 2
    assert f"{variable} must be a whole number from" in capsys.readouterr().err


def test_defaults_and_overrides() -> None:
    assert settings.Settings.from_env({}).serve == settings.ServeSettings(
        workers=2, threads=16, batch_wait_ms=2, max_batch_rows=256
    )
    overridden = settings.Settings.from_env(
        {
            settings.SERVE_WORKERS_ENV: "4",
            settings.SERVE_THREADS_ENV: "32",
            settings.SERVE_BATCH_WAIT_ENV: "0",
            settings.SERVE_MAX_BATCH_ENV: "64",
        }
    )
    assert overridden.serve == settings.ServeSettings(workers=4, threads=32, batch_wait_ms=0, max_batch_rows=64)
