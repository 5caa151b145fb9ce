"""The one Definitions object of the code location (workspace.yaml points here).

Every `*.yaml` spec in the shipped use-case directory, plus ML_PLATFORM_SPECS_DIR
if set, becomes a use case through the same factory.
"""

from __future__ import annotations

import dagster as dg

from ml_platform.automation.failure_alerts import build_failure_alert_sensor
from ml_platform.automation.triggers import build_automation_condition_sensor
from ml_platform.extras import require_model_extra
from ml_platform.factory import build_use_case
from ml_platform.k8s.executors import default_executor
from ml_platform.resources import default_resources
from ml_platform.settings import Settings
from ml_platform.spec import SpecError, UseCaseSpec, load_spec


def load_specs(settings: Settings | None = None) -> list[UseCaseSpec]:
    settings = settings or Settings.from_env()
    directories, paths = settings.spec_dirs, settings.spec_paths
    specs = [load_spec(path) for path in paths]
    for path, spec in zip(paths, specs, strict=True):
        require_model_extra(spec, path)  # torch, text: extras an image may lack
    names = [spec.name for spec in specs]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise SpecError(f"use-case names must be unique across {directories}: {duplicated}")
    return specs


def build_definitions(specs: list[UseCaseSpec], settings: Settings | None = None) -> dg.Definitions:
    """The platform's definitions; the settings are read from the environment here, once, unless given."""
    settings = settings or Settings.from_env()
    return dg.Definitions.merge(
        *[build_use_case(spec, settings) for spec in specs],
        dg.Definitions(
            resources=default_resources(settings),
            executor=default_executor(settings),
            sensors=[build_failure_alert_sensor(settings), build_automation_condition_sensor(settings)],
        ),
    )


SETTINGS = Settings.from_env()
defs = build_definitions(load_specs(SETTINGS), SETTINGS)
