"""Environment-keyed settings: where data lives, resolved once per process."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ML_PLATFORM_DATA_DIR"
SPECS_DIR_ENV = "ML_PLATFORM_SPECS_DIR"
SHIPPED_SPECS_DIR = Path(__file__).parent / "use_cases"


def data_dir() -> Path:
    """Root of landed files, the Parquet lake and the local MLflow store."""
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


def lake_path() -> str:
    """Base path of the Parquet lake; any fsspec URL (e.g. s3://bucket/lake) via ML_PLATFORM_LAKE."""
    return os.environ.get("ML_PLATFORM_LAKE", str(data_dir() / "lake"))


def spec_dirs() -> list[Path]:
    """Shipped use cases plus, optionally, a directory of the user's own specs."""
    extra = os.environ.get(SPECS_DIR_ENV)
    return [SHIPPED_SPECS_DIR, *([Path(extra)] if extra else [])]


def sensor_interval(default_seconds: int) -> int:
    """Minimum seconds between a sensor's ticks; ML_PLATFORM_SENSOR_INTERVAL overrides every sensor (tests, demos)."""
    return int(os.environ.get("ML_PLATFORM_SENSOR_INTERVAL", default_seconds))
