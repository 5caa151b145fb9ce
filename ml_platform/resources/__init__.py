"""Resources shared by every use case, keyed for the embedded-default environment (each use case
adds its own source resource: `ml_platform.resources.sources.source_resource`)."""

from __future__ import annotations

import os
from typing import TypedDict

import dagster as dg

from ml_platform.io.parquet_lake import DataLake, LakeIOManager
from ml_platform.models.model_cache import KEY_ENV as MODEL_CACHE_KEY_ENV
from ml_platform.resources.alerts import AlertResource
from ml_platform.resources.mlflow_resource import MlflowResource
from ml_platform.settings import Settings


class PlatformResources(TypedDict):
    """The shared resources by key, each with its own type (commands use them outside Dagster too)."""

    lake: DataLake
    io_manager: LakeIOManager
    mlflow: MlflowResource
    alerts: AlertResource


def default_resources(settings: Settings | None = None) -> PlatformResources:
    settings = settings or Settings.from_env()
    data_dir = str(settings.data_dir)
    lake = DataLake(base_path=settings.lake_path)
    return {
        "lake": lake,
        "io_manager": LakeIOManager(lake=lake),
        "mlflow": MlflowResource(
            data_dir=data_dir,
            ui_url=settings.mlflow_ui_url,
            dagster_ui_url=settings.dagster_ui_url,
            model_cache_dir=str(settings.model_cache_dir or ""),
            # a secret: by reference (Dagster shows the variable's name), and only when set (EnvVar fails on unset ones)
            model_cache_key=dg.EnvVar(MODEL_CACHE_KEY_ENV) if os.environ.get(MODEL_CACHE_KEY_ENV) else "",
            model_cache_key_file=str(settings.model_cache_key_file),
        ),
        "alerts": AlertResource.from_env(settings.dagster_ui_url),
    }
