"""Every non-secret setting of the platform, read from the environment in this one module.

Values are read when definitions are built (a code location load, a CLI command), each validated
with an error that names the variable and what was expected. Secrets are not settings: a Postgres
source's URL is read from its spec's `dsn_env` when a table is read, alert webhooks through
`dg.EnvVar`, MLflow credentials by MLflow itself (`MLFLOW_TRACKING_USERNAME/PASSWORD`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "ML_PLATFORM_DATA_DIR"
LAKE_ENV = "ML_PLATFORM_LAKE"
SPECS_DIR_ENV = "ML_PLATFORM_SPECS_DIR"
SENSOR_INTERVAL_ENV = "ML_PLATFORM_SENSOR_INTERVAL"
AUTOMATION_ENV = "ML_PLATFORM_AUTOMATION"
UI_URL_ENV = "ML_PLATFORM_UI_URL"
MLFLOW_UI_URL_ENV = "MLFLOW_UI_URL"
ENVIRONMENT_ENV = "ML_PLATFORM_ENV"
GPU_IMAGE_ENV = "ML_PLATFORM_GPU_IMAGE"
GPU_NODE_SELECTOR_ENV = "ML_PLATFORM_GPU_NODE_SELECTOR"
GPU_TOLERATIONS_ENV = "ML_PLATFORM_GPU_TOLERATIONS"
SHIPPED_SPECS_DIR = Path(__file__).parent / "use_cases"
KUBERNETES = "k8s"


class SettingError(ValueError):
    """An environment variable holds something the platform cannot use; the message names it."""


def data_dir() -> Path:
    """Root of landed files, the Parquet lake and the local MLflow store."""
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


def lake_path() -> str:
    """Base path of the Parquet lake; any fsspec URL (e.g. s3://bucket/lake) via ML_PLATFORM_LAKE."""
    return os.environ.get(LAKE_ENV, str(data_dir() / "lake"))


def spec_dirs() -> list[Path]:
    """Shipped use cases plus, optionally, a directory of the user's own specs."""
    extra = os.environ.get(SPECS_DIR_ENV)
    return [SHIPPED_SPECS_DIR, *([Path(extra)] if extra else [])]


def sensor_interval(default_seconds: int) -> int:
    """Minimum seconds between a sensor's ticks; ML_PLATFORM_SENSOR_INTERVAL overrides every sensor (tests, demos)."""
    raw = os.environ.get(SENSOR_INTERVAL_ENV, "").strip()
    if not raw:
        return default_seconds
    if not raw.isdigit() or int(raw) < 1:
        raise SettingError(f"{SENSOR_INTERVAL_ENV} must be a whole number of seconds >= 1, got '{raw}'")
    return int(raw)


def automation_running() -> bool:
    """Default status of schedules and sensors: ML_PLATFORM_AUTOMATION=running or stopped (default)."""
    raw = os.environ.get(AUTOMATION_ENV, "stopped").strip().lower() or "stopped"
    if raw not in ("running", "stopped"):
        raise SettingError(f"{AUTOMATION_ENV} must be 'running' or 'stopped', got '{raw}'")
    return raw == "running"


def dagster_ui_url() -> str:
    """Where people open the Dagster UI (links in alerts and MLflow runs)."""
    return os.environ.get(UI_URL_ENV, "http://127.0.0.1:3000")


def mlflow_ui_url() -> str:
    """Where people open MLflow (links in asset metadata)."""
    return os.environ.get(MLFLOW_UI_URL_ENV, "http://127.0.0.1:5000")


def deployment_environment() -> str:
    """`local` (default) or `k8s` (set by the Helm chart's ConfigMap)."""
    raw = os.environ.get(ENVIRONMENT_ENV, "local").strip().lower() or "local"
    if raw not in ("local", KUBERNETES):
        raise SettingError(f"{ENVIRONMENT_ENV} must be 'local' or '{KUBERNETES}', got '{raw}'")
    return raw


def gpu_image() -> str:
    """The CUDA image for GPU training steps on Kubernetes (empty: the run's own image)."""
    return os.environ.get(GPU_IMAGE_ENV, "").strip()


def gpu_node_selector() -> dict[str, str]:
    return _json(GPU_NODE_SELECTOR_ENV, dict)


def gpu_tolerations() -> list[dict[str, Any]]:
    return _json(GPU_TOLERATIONS_ENV, list)


def _json(name: str, expected: type) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return expected()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingError(f"{name} must be JSON ({expected.__name__}): {error}") from None
    if not isinstance(value, expected):
        raise SettingError(f"{name} must be a JSON {expected.__name__}, got {type(value).__name__}")
    return value
