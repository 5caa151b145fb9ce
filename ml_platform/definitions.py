"""The one Definitions object of the code location (workspace.yaml points here).

Every `*.yaml` spec in the shipped use-case directory, plus ML_PLATFORM_SPECS_DIR
if set, becomes a use case through the same factory.
"""

from __future__ import annotations

import dagster as dg

from ml_platform import settings
from ml_platform.automation.failure_alerts import build_failure_alert_sensor
from ml_platform.automation.triggers import build_automation_condition_sensor
from ml_platform.factory import build_use_case
from ml_platform.k8s.executors import default_executor
from ml_platform.resources import default_resources
from ml_platform.spec import SpecError, UseCaseSpec, load_spec


def load_specs() -> list[UseCaseSpec]:
    specs = [load_spec(path) for directory in settings.spec_dirs() for path in sorted(directory.glob("*.yaml"))]
    names = [spec.name for spec in specs]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise SpecError(f"use-case names must be unique across {settings.spec_dirs()}: {duplicated}")
    return specs


def build_definitions(specs: list[UseCaseSpec]) -> dg.Definitions:
    return dg.Definitions.merge(
        *[build_use_case(spec) for spec in specs],
        dg.Definitions(
            resources=default_resources(), executor=default_executor(), sensors=[build_failure_alert_sensor(), build_automation_condition_sensor()]
        ),
    )


defs = build_definitions(load_specs())
