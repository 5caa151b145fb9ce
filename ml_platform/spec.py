"""Declarative use-case specs.

A use case is a YAML file validated by these pydantic models; the factory turns
any valid spec into the same asset graph. Every cross-field rule (a feature
naming an unknown column, a window longer than the lookback, ...) is checked
here so that a bad spec fails when the code location loads, with the file and
the field in the message, never halfway through a run.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
DType = Literal["string", "int64", "float64", "bool", "timestamp"]


class SpecError(ValueError):
    """A use-case spec is invalid; the message names the file and the field."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(StrictModel):
    """One column of the raw event schema and the limits the data gate enforces."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    dtype: DType
    max_null_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    allowed_values: list[str] | None = None
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""

    @model_validator(mode="after")
    def _limits_fit_dtype(self) -> ColumnSpec:
        if self.allowed_values is not None and self.dtype != "string":
            raise ValueError(f"allowed_values is only valid for string columns, not {self.dtype}")
        has_range = self.min_value is not None or self.max_value is not None
        if has_range and self.dtype not in ("int64", "float64"):
            raise ValueError(f"min_value/max_value are only valid for numeric columns, not {self.dtype}")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(f"min_value {self.min_value} is greater than max_value {self.max_value}")
        return self


class FileSourceSpec(StrictModel):
    """Daily files landed as `<directory>/<YYYY-MM-DD>.<format>`, one per day."""

    kind: Literal["files"] = "files"
    directory: str
    format: Literal["parquet", "csv"] = "parquet"


class PostgresSourceSpec(StrictModel):
    """Events read per day from a Postgres table (seed 000 keeps customers in Postgres)."""

    kind: Literal["postgres"]
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]
    dsn_env: str = "ML_PLATFORM_SOURCE_DSN"


class EventFilter(StrictModel):
    column: str
    equals: str | int | float | bool


class FeatureSpec(StrictModel):
    """A point-in-time feature: a daily aggregate rolled over `window_days` ending on the day."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    agg: Literal["count", "sum", "mean", "max", "min", "days_since_last"]
    column: str | None = None
    where: EventFilter | None = None
    window_days: Annotated[int, Field(ge=1, le=365)]

    @model_validator(mode="after")
    def _column_matches_agg(self) -> FeatureSpec:
        needs_column = self.agg in ("sum", "mean", "max", "min")
        if needs_column and self.column is None:
            raise ValueError(f"agg '{self.agg}' needs a column")
        if not needs_column and self.column is not None:
            raise ValueError(f"agg '{self.agg}' counts events and takes no column")
        return self


class LabelSpec(StrictModel):
    """Binary label: did the entity emit an event flagged in `column` within the next `horizon_days`."""

    column: str
    horizon_days: Annotated[int, Field(ge=1, le=90)]


class ModelSpec(StrictModel):
    type: Literal["sklearn_random_forest"] = "sklearn_random_forest"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingSpec(StrictModel):
    window_days: Annotated[int, Field(ge=2, le=730)] = 45
    holdout_days: Annotated[int, Field(ge=1, le=90)] = 7
    max_rows: Annotated[int, Field(ge=100)] = 200_000
    seed: int = 7


class GateSpec(StrictModel):
    """Quality thresholds: data gates on every partition, model gates before promotion."""

    min_rows_per_day: Annotated[int, Field(ge=0)] = 1
    min_metrics: dict[Literal["accuracy", "precision", "recall", "f1", "roc_auc"], float] = Field(
        default_factory=lambda: {"accuracy": 0.85}
    )
    compare_metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc"] = "roc_auc"
    max_regression: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    @field_validator("min_metrics")
    @classmethod
    def _metrics_are_fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for {metric} must be in [0, 1], got {threshold}")
        return value


class ScheduleSpec(StrictModel):
    daily_at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "01:30"
    retrain_cron: str = "0 3 * * 1"
    rescore_days: Annotated[int, Field(ge=1, le=366)] = 7
    timezone: str = "UTC"

    @field_validator("retrain_cron")
    @classmethod
    def _five_field_cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"'{value}' is not a five-field cron expression")
        return value


class TolerationSpec(StrictModel):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class ResourceSpec(StrictModel):
    """What training asks of the cluster; becomes the training step's Kubernetes pod settings."""

    gpu: Annotated[int, Field(ge=0, le=8)] = 0
    cpu: Annotated[str, Field(pattern=r"^\d+(\.\d+)?m?$")] = "1"
    memory: Annotated[str, Field(pattern=r"^\d+(Ki|Mi|Gi|Ti|K|M|G|T)?$")] = "2Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[TolerationSpec] = Field(default_factory=list)


class UseCaseSpec(StrictModel):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str
    owners: list[str] = Field(min_length=1)
    start_date: dt.date
    source: Annotated[FileSourceSpec | PostgresSourceSpec, Field(discriminator="kind")]
    entity_column: str
    timestamp_column: str
    event_id_column: str
    columns: list[ColumnSpec] = Field(min_length=1)
    label: LabelSpec
    features: list[FeatureSpec] = Field(min_length=1)
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    gates: GateSpec = GateSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    resources: ResourceSpec = ResourceSpec()

    @model_validator(mode="after")
    def _references_resolve(self) -> UseCaseSpec:
        by_name = {column.name: column for column in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError("columns: column names must be unique")
        for role in ("entity_column", "timestamp_column", "event_id_column"):
            name = getattr(self, role)
            if name not in by_name:
                raise ValueError(f"{role}: '{name}' is not one of the columns {sorted(by_name)}")
        if by_name[self.timestamp_column].dtype != "timestamp":
            raise ValueError(f"timestamp_column: '{self.timestamp_column}' must have dtype timestamp")
        label_column = by_name.get(self.label.column)
        if label_column is None:
            raise ValueError(f"label.column: '{self.label.column}' is not one of the columns {sorted(by_name)}")
        if label_column.dtype not in ("int64", "bool"):
            raise ValueError(f"label.column: '{self.label.column}' must be int64 (0/1) or bool")
        names = [feature.name for feature in self.features]
        if len(set(names)) != len(names):
            raise ValueError("features: feature names must be unique")
        for index, feature in enumerate(self.features):
            for ref in (feature.column, feature.where.column if feature.where else None):
                if ref is not None and ref not in by_name:
                    raise ValueError(
                        f"features[{index}] ({feature.name}): unknown column '{ref}', "
                        f"expected one of {sorted(by_name)}"
                    )
            if feature.column and by_name[feature.column].dtype not in ("int64", "float64"):
                raise ValueError(f"features[{index}] ({feature.name}): column '{feature.column}' is not numeric")
        if self.training.holdout_days >= self.training.window_days:
            raise ValueError("training.holdout_days must be smaller than training.window_days")
        return self

    @property
    def max_window_days(self) -> int:
        return max(feature.window_days for feature in self.features)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def column(self, name: str) -> ColumnSpec:
        return next(column for column in self.columns if column.name == name)


def load_spec(path: str | Path) -> UseCaseSpec:
    """Load and validate one spec file; any problem raises SpecError naming file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"{path}: cannot read spec: {error}") from error
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return UseCaseSpec.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{_field_path(issue['loc'])}: {issue['msg']}" for issue in error.errors(include_url=False)
        )
        raise SpecError(f"{path}: invalid use-case spec: {problems}") from None


def _field_path(location: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif not re.fullmatch(r"files|postgres|function-after\[.*\]", str(part)):
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "<root>"
