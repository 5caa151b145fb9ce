"""Declarative use-case specs.

A use case is a YAML file validated by these pydantic models; the factory turns
any valid spec into the same asset graph. Every cross-field rule (a feature
naming an unknown column, a window longer than the lookback, ...) is checked
here so that a bad spec fails when the code location loads, with the file and
the field in the message, never halfway through a run.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# Any real history: daily partitions from here on load and run alike (pandas reaches back to 1677, Dagster to 1900).
EARLIEST_START = dt.date(1900, 1, 1)
OWNER_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
OWNER_TEAM = re.compile(r"team:[A-Za-z0-9_-]+")
ROW_ID = "row_id"  # the event id derived from an event's content when the spec names none
DType = Literal["string", "int64", "float64", "bool", "timestamp"]
# A data gate's failure either blocks the day (it is not written, nothing downstream of it runs) or warns
# (the evaluation is recorded as a WARN and the day goes through).
Severity = Literal["block", "warn"]
# A day without source data: a failed `landed` gate (a delivery is missing), or a day without events
# (an irregular calendar: trading days, field campaigns), stored as an empty partition.
MissingDays = Literal["fail", "empty"]
# the raw-event label gate, named for the task
LABEL_CHECKS = {"classification": "binary_label", "regression": "finite_label", "multiclass": "class_label"}
# raw-event gates that may warn; `landed` and `schema` always block (a day that is not there or not
# in the declared shape cannot be stored)
WARNABLE_CHECKS = ("null_fraction", "min_rows", "unique_event_ids", "value_ranges", "timestamps_in_partition")


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
    # how this column's limits (max_null_fraction, min/max_value, allowed_values) act when exceeded; default:
    # the severity of the gate that checks them (gates.severity.null_fraction / value_ranges / the label gate)
    severity: Severity | None = None
    description: str = ""

    @field_validator("min_value", "max_value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value} (it would switch the range gate off)")
        return value

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
    directory: str  # relative to the data directory, and inside it
    format: Literal["parquet", "csv"] = "parquet"
    # CSV timestamps that are not ISO 8601, as a strftime format ('%m/%d/%Y %H:%M'); read as UTC
    timestamp_format: str | None = None
    # a day without a file: `fail` its landed gate (default), or `empty`: a day without events
    missing_days: MissingDays = "fail"

    @field_validator("timestamp_format")
    @classmethod
    def _round_trips(cls, value: str | None) -> str | None:
        if value is None:
            return value
        sample = dt.datetime(2024, 11, 23, 17, 45, 9)
        try:
            if "%" not in value:
                raise ValueError(value)
            dt.datetime.strptime(sample.strftime(value), value)
        except (ValueError, TypeError):
            raise ValueError(
                f"'{value}' is not a strftime format that reads back what it writes, e.g. '%m/%d/%Y %H:%M:%S'"
            ) from None
        return value

    @model_validator(mode="after")
    def _format_is_for_csv(self) -> FileSourceSpec:
        if self.timestamp_format is not None and self.format != "csv":
            raise ValueError("timestamp_format is for CSV files; Parquet stores timestamps typed")
        return self

    @field_validator("directory")
    @classmethod
    def _inside_data_dir(cls, value: str) -> str:
        path = Path(value)
        if not value.strip() or path.is_absolute() or ".." in path.parts:
            raise ValueError(f"'{value}' must be a relative path inside the data directory, e.g. landing/<name>")
        return value


class PostgresSourceSpec(StrictModel):
    """Events read per day from a Postgres table (customer data often lives in the operational database)."""

    kind: Literal["postgres"]
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]
    dsn_env: str = "ML_PLATFORM_SOURCE_DSN"
    # A column the writer bumps on every insert or update: with it, corrected rows rerun their day
    # too; without it a day's version is its row count, which only appends and deletes change.
    updated_at_column: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    # a day without rows: `fail` its min_rows gate as any short day (default), or `empty`: a day without events
    missing_days: MissingDays = "fail"

    @field_validator("table")
    @classmethod
    def _not_a_system_table(cls, value: str) -> str:
        schema = value.split(".")[0].lower() if "." in value else ""
        if value.count(".") > 1 or schema.startswith("pg_") or schema == "information_schema":
            raise ValueError(f"'{value}' must be [schema.]table of your events, not a system catalog")
        return value


class EventFilter(StrictModel):
    column: str
    equals: str | int | float | bool


WINDOW_AGGS = ("count", "sum", "mean", "max", "min", "days_since_last")
EVENT_AGGS = ("value", "flag", "hour", "category", "text")
AS_OF_AGGS = ("count", "sum", "mean")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "skill_vs_naive")
MULTICLASS_METRICS = ("accuracy", "macro_f1")
# what `<uc>/performance` can estimate from a day's scores alone, per task (ml_platform/monitoring/realized.py)
ESTIMATED_METRICS = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy",),
    "regression": ("mae", "skill_vs_naive"),
}
TASK_METRICS = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
    "multiclass": MULTICLASS_METRICS,
}
LOWER_IS_BETTER = frozenset({"mae", "rmse"})


Task = Literal["classification", "regression", "multiclass"]
Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "macro_f1", "mae", "rmse", "skill_vs_naive"]


def _thresholds(values: dict[Metric, float]) -> dict[Metric, float]:
    """A default's literal keys typed as metrics (a bare dict literal in a lambda is inferred as dict[str, ...])."""
    return values


class FeatureSpec(StrictModel):
    """A point-in-time feature.

    Window aggregates (count, sum, mean, max, min, days_since_last) roll a daily
    aggregate per entity over `window_days`: ending on the day for entity-day
    rows, ending the day before for event rows. `last` is the entity's last
    value `lag_days` before the day (`lags: n` expands to n lag features).
    Event rows can also use the event's own `value`, a `flag` (1 where `where`
    matches), the `hour` of its timestamp, and a `category` (a string column, encoded
    by the model: one-hot of the `top_k` most frequent values plus "other", their
    frequency, or an out-of-fold target mean; fitted on training days only and stored
    with the model, so scoring uses the same encoding), or a `text` (a string column
    passed as it is to a text model such as `pretrained_text`).
    """

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    agg: Literal[
        "count", "sum", "mean", "max", "min", "days_since_last", "last", "value", "flag", "hour", "category", "text"
    ]
    column: str | None = None
    where: EventFilter | None = None
    window_days: Annotated[int, Field(ge=1, le=365)] = 1
    lag_days: Annotated[int, Field(ge=0, le=365)] = 0
    lags: Annotated[int, Field(ge=0, le=365)] = 0
    transform: Literal["none", "log1p"] = "none"
    encoding: Literal["one_hot", "frequency", "target"] = "one_hot"
    top_k: Annotated[int, Field(ge=1, le=1000)] = 20
    # event grain: whose history a window aggregates (default the entity; several columns form one key)
    by: list[str] = []
    # event grain: windows end the day before the event's day, or just before the event itself (as-of)
    window_ends: Literal["day_before", "event"] = "day_before"

    @model_validator(mode="after")
    def _column_matches_agg(self) -> FeatureSpec:
        needs_column = self.agg in ("sum", "mean", "max", "min", "last", "value", "category", "text")
        if needs_column and self.column is None:
            raise ValueError(f"agg '{self.agg}' needs a column")
        if not needs_column and self.column is not None:
            raise ValueError(f"agg '{self.agg}' takes no column")
        if self.agg == "flag" and self.where is None:
            raise ValueError("agg 'flag' needs a where filter")
        if (self.lags or self.lag_days) and self.agg != "last":
            raise ValueError("lags/lag_days are only valid with agg 'last'")
        defaults = FeatureSpec.model_fields
        if self.agg != "category" and (self.encoding, self.top_k) != (
            defaults["encoding"].default,
            defaults["top_k"].default,
        ):
            raise ValueError("encoding/top_k are only valid with agg 'category'")
        if self.agg in ("category", "text") and self.transform != "none":
            raise ValueError(f"a {self.agg} is read by the model as it is: transform must be none")
        return self

    def expanded(self) -> list[FeatureSpec]:
        """`lags: n` becomes n features name_lag_0..name_lag_{n-1}; anything else is itself."""
        if not self.lags:
            return [self]
        return [
            self.model_copy(update={"name": f"{self.name}_lag_{k}", "lag_days": self.lag_days + k, "lags": 0})
            for k in range(self.lags)
        ]


class LabelSpec(StrictModel):
    """What the model predicts.

    - future_flag: 1 if the entity's event flag in `column` fires within the next `horizon_days` (churn);
    - event_flag: the event's own flag in `column` (fraud; horizon 0);
    - next_value: the entity's last `column` value `horizon_days` later (forecasting; regression),
      compared against `naive_feature`, the last observed value;
    - event_class: the event's own class in `column`, a string column whose `allowed_values` are the
      classes (a news article's topic; multiclass, horizon 0).

    A flag is 0/1 (or bool) or, for a string column ("YES"/"NO"), 1 where it equals `positive`;
    null is an unknown outcome either way.
    """

    kind: Literal["future_flag", "event_flag", "next_value", "event_class"] = "future_flag"
    column: str
    horizon_days: Annotated[int, Field(ge=0, le=90)] = 1
    naive_feature: str | None = None
    terminal: bool = False  # future_flag only: the flag ends the entity (a cancellation); it is not scored after
    positive: str | None = None  # a string flag column's value that means 1 (every other known value is 0)

    @model_validator(mode="after")
    def _horizon_matches_kind(self) -> LabelSpec:
        if self.kind in ("event_flag", "event_class") and self.horizon_days != 0:
            raise ValueError(f"an {self.kind} label is the event's own: horizon_days must be 0")
        if self.kind not in ("event_flag", "event_class") and self.horizon_days < 1:
            raise ValueError(f"a {self.kind} label looks ahead: horizon_days must be at least 1")
        if self.terminal and self.kind != "future_flag":
            raise ValueError("terminal is only meaningful for future_flag labels")
        if self.positive is not None and self.kind in ("next_value", "event_class"):
            raise ValueError(f"positive names a flag's value: a {self.kind} label is not a flag")
        if self.kind == "next_value" and self.naive_feature is None:
            raise ValueError("a next_value label needs naive_feature (the last observed value) for the naive baseline")
        return self

    @property
    def task(self) -> Task:
        tasks: dict[str, Task] = {"next_value": "regression", "event_class": "multiclass"}
        return tasks.get(self.kind, "classification")

    @property
    def is_event_label(self) -> bool:
        """The label is the event's own (its flag or its class), not something later in the entity's history."""
        return self.kind in ("event_flag", "event_class")


Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=1_000_000)]
LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]


class RandomForestParams(StrictModel):
    """scikit-learn RandomForestClassifier parameters the platform accepts, with sane bounds."""

    n_estimators: Annotated[int, Field(ge=1, le=5_000)] = 100
    max_depth: Annotated[int, Field(ge=1, le=200)] | None = None
    min_samples_leaf: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    min_samples_split: Annotated[int, Field(ge=2, le=1_000_000)] = 2
    max_features: Literal["sqrt", "log2"] | Annotated[float, Field(gt=0.0, le=1.0)] | None = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = None
    criterion: Literal["gini", "entropy", "log_loss"] = "gini"
    n_jobs: Annotated[int, Field(ge=-1, le=256)] | None = None
    bootstrap: bool = True
    max_samples: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    max_leaf_nodes: Annotated[int, Field(ge=2, le=10_000_000)] | None = None
    random_state: int | None = None


class TorchParams(StrictModel):
    epochs: Epochs = 60
    batch_size: BatchSize = 512
    lr: LearningRate = 2e-3
    patience: Annotated[int, Field(ge=1, le=1_000)] = 6
    weight_decay: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    validation_fraction: Annotated[float, Field(gt=0.0, lt=0.9)] = 0.2
    random_state: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"


class TorchMLPParams(TorchParams):
    hidden: Annotated[list[Annotated[int, Field(ge=1, le=8_192)]], Field(min_length=1, max_length=8)] = [64, 32]


class TorchBiRNNParams(TorchParams):
    hidden: Annotated[int, Field(ge=1, le=4_096)] = 32
    layers: Annotated[int, Field(ge=1, le=8)] = 1


class PretrainedTextParams(StrictModel):
    """A packaged sentence encoder scoring each text against a description of each class (zero-shot):
    nothing is learned from the training days, the holdout measures it like any model."""

    encoder: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"  # shipped inside its PyPI package: no download
    descriptions: dict[
        str, Annotated[str, Field(min_length=1, max_length=2_000)]
    ] = {}  # class -> words (default: its name)
    max_chars: Annotated[int, Field(ge=16, le=100_000)] = 1_000  # of each text, read by the encoder
    temperature: Annotated[float, Field(gt=0.0, le=10.0)] = 0.05  # softmax over cosine similarities
    batch_size: BatchSize = 64


MODEL_PARAMS: dict[str, type[StrictModel]] = {
    "sklearn_random_forest": RandomForestParams,
    "torch_mlp": TorchMLPParams,
    "torch_birnn": TorchBiRNNParams,
    "pretrained_text": PretrainedTextParams,
}


class ModelSpec(StrictModel):
    type: Literal["sklearn_random_forest", "torch_mlp", "torch_birnn", "pretrained_text"] = "sklearn_random_forest"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit_type(self) -> ModelSpec:
        """Unknown names and out-of-range values fail here (`params.<name>: ...`), not in the middle of training."""
        try:
            MODEL_PARAMS[self.type].model_validate(self.params)
        except ValidationError as error:
            problems = "; ".join(
                f"params.{'.'.join(str(p) for p in issue['loc'])}: {issue['msg']}"
                for issue in error.errors(include_url=False)
            )
            raise ValueError(f"{problems} (model type {self.type})") from None
        return self


class TuningSpec(StrictModel):
    """A search before training: `trials` combinations of `space` (param -> candidate values; every
    combination when there are no more), sampled under the training seed, each scored by time-ordered
    cross-validation over the training days (`folds` expanding windows, the label horizon purged
    between training and validation days). The best is retrained on every training day. No new trial
    starts after `max_minutes`."""

    space: dict[str, list[Any]] = Field(min_length=1)
    trials: Annotated[int, Field(ge=1, le=200)] = 10
    folds: Annotated[int, Field(ge=2, le=10)] = 3
    max_minutes: Annotated[float, Field(gt=0.0, le=1440.0, allow_inf_nan=False)] = 30.0


class TrainingSpec(StrictModel):
    window_days: Annotated[int, Field(ge=2, le=730)] = 45
    holdout_days: Annotated[int, Field(ge=1, le=90)] = 7
    max_rows: Annotated[int, Field(ge=100)] = 200_000
    seed: int = 7
    tuning: TuningSpec | None = None


class GateSpec(StrictModel):
    """Quality thresholds: data gates on every partition, model gates before promotion."""

    min_rows_per_day: Annotated[int, Field(ge=0)] = 1
    min_metrics: dict[Metric, float] = Field(default_factory=lambda: _thresholds({"accuracy": 0.85}))
    max_metrics: dict[Metric, float] = Field(default_factory=dict)
    compare_metric: Metric = "roc_auc"
    # a challenger replaces the champion only if it is better beyond noise on the same holdout
    # (one-sided paired bootstrap test of compare_metric at this significance level)
    significance_level: Annotated[float, Field(gt=0.0, le=0.5)] = 0.05
    bootstrap_resamples: Annotated[int, Field(ge=100, le=20_000)] = 1_000
    # per raw-event gate: block (default) or warn; a column's own `severity` overrides it for that column
    severity: dict[str, Severity] = Field(default_factory=dict)
    # 0: a challenger that passes the holdout gates is promoted at once. N > 0: it waits in shadow
    # (`<uc>/shadow_predictions`) until its paired comparison with the champion on N or more live days
    # with matured labels is significantly better (`<uc>/shadow_comparison`), then the live-evidence sensor promotes it.
    live_evidence_days: Annotated[int, Field(ge=0, le=365)] = 0

    @field_validator("min_metrics")
    @classmethod
    def _metrics_are_fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, threshold in value.items():
            if metric in (*CLASSIFICATION_METRICS, *MULTICLASS_METRICS) and not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for {metric} must be in [0, 1], got {threshold}")
            if metric in LOWER_IS_BETTER:
                raise ValueError(f"{metric} is lower-is-better: put it under max_metrics")
        return value

    def failures(self, metrics: dict[str, float]) -> dict[str, str]:
        """Each violated threshold as 'observed vs limit'."""
        failed: dict[str, str] = {
            m: f"{metrics[m]:.4f} < {limit}" for m, limit in self.min_metrics.items() if metrics[m] < limit
        }
        failed.update({m: f"{metrics[m]:.4f} > {limit}" for m, limit in self.max_metrics.items() if metrics[m] > limit})
        return failed


class ScheduleSpec(StrictModel):
    daily_at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "01:30"
    # the daily assets are late (freshness FAIL in Dagster's asset health) when not materialized within this many
    # minutes after daily_at (at most a day: the next day's schedule comes then)
    late_after_minutes: Annotated[int, Field(ge=1, le=1440)] = 120
    retrain_cron: str = "0 3 * * 1"
    rescore_days: Annotated[int, Field(ge=1, le=366)] = 7
    timezone: str = "UTC"

    @field_validator("retrain_cron")
    @classmethod
    def _five_field_cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"'{value}' is not a five-field cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone such as UTC or Europe/Berlin") from None
        return value


class TolerationSpec(StrictModel):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class AlertSpec(StrictModel):
    """The daily alert on high-risk entities: scores at or above the threshold are sent.

    The alert goes out only when at least `min_count` entities qualify, so a quiet day pages nobody.
    """

    high_score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    min_count: Annotated[int, Field(ge=1)] = 1
    max_listed: Annotated[int, Field(ge=1, le=500)] = 20


class DriftSpec(StrictModel):
    """When feature drift (PSI against the champion's training data) triggers retraining."""

    psi_threshold: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)] = 0.25
    consecutive_days: Annotated[int, Field(ge=1, le=30)] = 2
    # PSI over fewer rows than this is noise (a handful of entities scores PSI > 1 by chance): not measured
    min_rows: Annotated[int, Field(ge=1, le=10_000_000)] = 100


class MonitoringSpec(StrictModel):
    """How the champion is watched on live days."""

    # registered versions that score every new day in shadow besides the newest non-champion version
    shadow_versions: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    # the performance gate: gates.compare_metric below the lower end of the champion's holdout interval on
    # `consecutive_days` consecutive scored days, realized on matured labels or estimated from the scores
    performance_source: Literal["realized", "estimated"] = "realized"
    consecutive_days: Annotated[int, Field(ge=1, le=30)] = 3


class BackfillSpec(StrictModel):
    """How a backfill of the daily step is split into runs: none, the whole range is one run; N, runs of N
    days that the run queue runs side by side (on Kubernetes, one pod each), at most `max_concurrent_runs` of
    the use case's backfill runs at once (none: as many as the instance's run limit lets through)."""

    max_days_per_run: Annotated[int, Field(ge=1, le=3660)] | None = None
    max_concurrent_runs: Annotated[int, Field(ge=1, le=1000)] | None = None


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
    grain: Literal["entity_day", "event"] = "entity_day"
    source: Annotated[FileSourceSpec | PostgresSourceSpec, Field(discriminator="kind")]
    # Whose history the window features aggregate (a customer, a card). Required at entity_day grain; at
    # event grain it may be left out when every window feature names its own key (`by`).
    entity_column: str | None = None
    timestamp_column: str
    # A unique id of each event. Without one, an event is identified by its content: the values of
    # `unique_columns` (default: every column), hashed into the ROW_ID column at ingest.
    event_id_column: str | None = None
    unique_columns: list[str] = []
    columns: list[ColumnSpec] = Field(min_length=1)
    label: LabelSpec
    features: list[FeatureSpec] = Field(min_length=1)
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    gates: GateSpec = GateSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    drift: DriftSpec = DriftSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    alerts: AlertSpec = AlertSpec()
    resources: ResourceSpec = ResourceSpec()
    backfill: BackfillSpec = BackfillSpec()

    @field_validator("start_date", mode="wrap")
    @classmethod
    def _plausible_start(cls, value: Any, parse: ValidatorFunctionWrapHandler) -> dt.date:
        """A calendar date (pydantic would read a number as seconds since 1970, so `0` would mean 1970-01-01)
        from EARLIEST_START to a year ahead: each day from it is a partition."""
        if not isinstance(value, (str, dt.date)):
            raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")
        start: dt.date = parse(value)
        latest = dt.date.today() + dt.timedelta(days=366)
        if not EARLIEST_START <= start <= latest:
            raise ValueError(f"{start} must lie between {EARLIEST_START} and {latest} (one partition per day from it)")
        return start

    @field_validator("owners")
    @classmethod
    def _dagster_owners(cls, value: list[str]) -> list[str]:
        for owner in value:
            if not (OWNER_EMAIL.fullmatch(owner) or OWNER_TEAM.fullmatch(owner)):
                raise ValueError(f"'{owner}' must be an email address or team:<name>")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> UseCaseSpec:
        by_name = {column.name: column for column in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError("columns: column names must be unique")
        for role in ("entity_column", "timestamp_column", "event_id_column"):
            name = getattr(self, role)
            if name is not None and name not in by_name:
                raise ValueError(f"{role}: '{name}' is not one of the columns {sorted(by_name)}")
        if by_name[self.timestamp_column].dtype != "timestamp":
            raise ValueError(f"timestamp_column: '{self.timestamp_column}' must have dtype timestamp")
        self._event_identity_resolves(by_name)
        self._entity_resolves()
        self._label_resolves(by_name)
        names = self.feature_names
        self._features_resolve(by_name)
        if self.label.naive_feature is not None and self.label.naive_feature not in names:
            raise ValueError(f"label.naive_feature: '{self.label.naive_feature}' is not one of the features")
        self._text_model_fits()
        metrics = TASK_METRICS[self.label.task]
        for field_name, metric in [
            ("gates.compare_metric", self.gates.compare_metric),
            *[("gates.min_metrics", m) for m in self.gates.min_metrics],
            *[("gates.max_metrics", m) for m in self.gates.max_metrics],
        ]:
            if metric not in metrics:
                raise ValueError(
                    f"{field_name}: '{metric}' is not a {self.label.task} metric, expected one of {list(metrics)}"
                )
        estimable = ESTIMATED_METRICS[self.label.task]
        if self.monitoring.performance_source == "estimated" and self.gates.compare_metric not in estimable:
            raise ValueError(
                f"monitoring.performance_source: 'estimated' gates on gates.compare_metric "
                f"'{self.gates.compare_metric}', which is not estimated from scores for a {self.label.task} "
                f"task (estimated: {list(estimable)}); use 'realized' or one of those as the compare metric"
            )
        if self.alerts.high_score_threshold is not None and self.label.task != "classification":
            raise ValueError("alerts.high_score_threshold: only classifiers produce scores in [0, 1]")
        self._tuning_space_fits_model()
        self._severities_resolve()
        if self.training.holdout_days >= self.training.window_days:
            raise ValueError("training.holdout_days must be smaller than training.window_days")
        return self

    @property
    def expanded_features(self) -> list[FeatureSpec]:
        return [expanded for feature in self.features for expanded in feature.expanded()]

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.expanded_features]

    @property
    def categorical_features(self) -> list[FeatureSpec]:
        return [feature for feature in self.expanded_features if feature.agg == "category"]

    @property
    def numeric_feature_names(self) -> list[str]:
        """The features that are numbers in the feature store (categories are strings until the model encodes them,
        texts are read by a text model)."""
        return [feature.name for feature in self.expanded_features if feature.agg not in ("category", "text")]

    @property
    def classes(self) -> list[str]:
        """A multiclass label's classes, in the order of the label column's allowed_values."""
        return list(self.column(self.label.column).allowed_values or []) if self.label.task == "multiclass" else []

    @property
    def lookback_days(self) -> int:
        """Raw days before a row's day (inclusive of it) that its features may read."""
        spans = []
        for feature in self.expanded_features:
            if feature.agg in WINDOW_AGGS:
                spans.append(feature.window_days + (1 if self.grain == "event" else 0))
            elif feature.agg == "last":
                spans.append(feature.lag_days + feature.window_days)
            else:
                spans.append(1)
        return max(spans)

    def _event_identity_resolves(self, by_name: dict[str, ColumnSpec]) -> None:
        if self.event_id_column is not None and self.unique_columns:
            raise ValueError(
                "unique_columns: only for specs without event_id_column (the id already identifies an event)"
            )
        unknown = [name for name in self.unique_columns if name not in by_name]
        if unknown:
            raise ValueError(f"unique_columns: {unknown} not among the columns {sorted(by_name)}")
        if ROW_ID in by_name and self.event_id_column is None:
            raise ValueError(
                f"columns: '{ROW_ID}' is the name of the derived event id; name event_id_column: {ROW_ID} "
                "if it is your id column"
            )
        if self.entity_column == self.event_key and any(f.agg not in EVENT_AGGS for f in self.features):
            raise ValueError(
                f"entity_column: '{self.entity_column}' identifies single events, so every window feature "
                "would count one event: aggregate by the entity whose history matters (a customer, a card), "
                "or use only event features (value, flag, hour)"
            )

    def _label_resolves(self, by_name: dict[str, ColumnSpec]) -> None:
        label_column = by_name.get(self.label.column)
        if label_column is None:
            raise ValueError(f"label.column: '{self.label.column}' is not one of the columns {sorted(by_name)}")
        if self.label.positive is not None:
            if label_column.dtype != "string":
                raise ValueError(
                    f"label.positive: only for a string label column; '{self.label.column}' is "
                    f"{label_column.dtype} (0/1 already says which outcome is positive)"
                )
            allowed = label_column.allowed_values
            if allowed is None or self.label.positive not in allowed or len(allowed) != 2:
                raise ValueError(
                    f"label.positive: '{self.label.positive}' must be one of exactly two allowed_values of "
                    f"column '{self.label.column}' (got {allowed}), so no other value counts as negative"
                )
        elif self.label.kind in ("future_flag", "event_flag") and label_column.dtype not in (
            "int64",
            "float64",
            "bool",
        ):
            raise ValueError(
                f"label.column: '{self.label.column}' must be int64 or float64 (0/1; null where the "
                f"outcome is unknown) or bool for a {self.label.kind} label, or a string column "
                "with label.positive naming the value that means 1"
            )
        if self.label.is_event_label and self.grain != "event":
            raise ValueError(f"label.kind: {self.label.kind} labels need grain: event")
        if not self.label.is_event_label and self.grain == "event":
            raise ValueError(f"label.kind: grain event needs an event_flag or event_class label, not {self.label.kind}")
        if self.label.kind == "event_class" and (
            label_column.dtype != "string" or len(label_column.allowed_values or []) < 2
        ):
            raise ValueError(
                f"label.column: an event_class label needs a string column whose allowed_values are the "
                f"classes (at least two); '{self.label.column}' is {label_column.dtype} with allowed_values "
                f"{label_column.allowed_values}"
            )
        if self.label.kind == "next_value" and by_name[self.label.column].dtype not in ("int64", "float64"):
            raise ValueError(f"label.column: '{self.label.column}' must be numeric for a next_value label")

    def _features_resolve(self, by_name: dict[str, ColumnSpec]) -> None:
        """Each feature's columns exist with the dtype its aggregation needs, at a grain that has it."""
        names = self.feature_names
        if len(set(names)) != len(names):
            raise ValueError("features: feature names must be unique (lags expand to <name>_lag_<k>)")
        for index, feature in enumerate(self.features):
            where = f"features[{index}] ({feature.name})"
            for ref in (feature.column, feature.where.column if feature.where else None):
                if ref is not None and ref not in by_name:
                    raise ValueError(f"{where}: unknown column '{ref}', expected one of {sorted(by_name)}")
            dtype = by_name[feature.column].dtype if feature.column is not None else None
            if feature.agg in ("sum", "mean", "max", "min", "last", "value") and dtype not in (
                "int64",
                "float64",
                "bool",
            ):
                raise ValueError(f"{where}: column '{feature.column}' is not numeric")
            if feature.agg in ("category", "text") and dtype != "string":
                raise ValueError(f"{where}: agg '{feature.agg}' needs a string column, '{feature.column}' is {dtype}")
            if feature.agg == "category" and not self.model.type.startswith("sklearn"):
                raise ValueError(
                    f"{where}: category features are encoded by scikit-learn models; model.type "
                    f"'{self.model.type}' reads numbers only (use value/flag features for it)"
                )
            if (feature.by or feature.window_ends == "event") and (
                self.grain != "event" or feature.agg not in WINDOW_AGGS
            ):
                raise ValueError(
                    f"{where}: by/window_ends are for window aggregates ({', '.join(WINDOW_AGGS)}) at grain: event"
                )
            if feature.window_ends == "event" and feature.agg not in AS_OF_AGGS:
                raise ValueError(f"{where}: as-of windows (window_ends: event) support {list(AS_OF_AGGS)}")
            for ref in feature.by:
                if ref not in by_name:
                    raise ValueError(f"{where}: by: unknown column '{ref}', expected one of {sorted(by_name)}")
            if feature.agg in EVENT_AGGS and self.grain != "event":
                raise ValueError(f"{where}: agg '{feature.agg}' describes single events and needs grain: event")
            if feature.agg == "last" and self.grain != "entity_day":
                raise ValueError(f"{where}: agg 'last' needs grain: entity_day")

    def _text_model_fits(self) -> None:
        """A text model reads exactly one text feature and names classes; nothing else reads text."""
        texts = [feature.name for feature in self.features if feature.agg == "text"]
        if self.model.type != "pretrained_text":
            if self.label.task == "multiclass":
                raise ValueError(
                    f"model.type: {self.model.type} predicts flags or numbers; event_class labels are "
                    "classified by model.type pretrained_text"
                )
            if texts:
                raise ValueError(f"features: text feature(s) {texts} are read by model.type pretrained_text only")
            return
        if len(texts) != 1 or len(self.features) != 1:
            raise ValueError("features: a pretrained_text model reads exactly one feature, with agg: text")
        if self.label.task != "multiclass":
            raise ValueError("model.type: pretrained_text classifies into classes: it needs an event_class label")
        unknown = sorted(set(self.model.params.get("descriptions", {})) - set(self.classes))
        if unknown:
            raise ValueError(
                f"model.params.descriptions: {unknown} are not classes of label column "
                f"'{self.label.column}' (allowed_values {self.classes})"
            )
        if self.training.tuning is not None:
            raise ValueError("training.tuning: a pretrained_text model learns nothing from the training days to tune")

    def _tuning_space_fits_model(self) -> None:
        """Every candidate value is a valid parameter of the model type, checked like `model.params`."""
        tuning = self.training.tuning
        for name, values in (tuning.space if tuning else {}).items():
            if not values:
                raise ValueError(f"training.tuning.space.{name}: give at least one candidate value")
            for value in values:
                try:
                    MODEL_PARAMS[self.model.type].model_validate({**self.model.params, name: value})
                except ValidationError as error:
                    issue = error.errors(include_url=False)[0]
                    raise ValueError(
                        f"training.tuning.space.{name}: {value!r}: {issue['msg']} (model type {self.model.type})"
                    ) from None

    def _severities_resolve(self) -> None:
        warnable = [*WARNABLE_CHECKS, LABEL_CHECKS[self.label.task]]
        for check in self.gates.severity:
            if check not in warnable:
                raise ValueError(
                    f"gates.severity.{check}: not a raw-event gate that may warn; expected one of "
                    f"{warnable} (landed and schema always block)"
                )

    def check_severity(self, check: str) -> Severity:
        """How a raw-event gate's failure acts: `gates.severity.<check>`, default block."""
        return self.gates.severity.get(check, "block")

    def column_severity(self, column: ColumnSpec, check: str) -> Severity:
        """How exceeding one column's limits acts in `check`: the column's own severity, else the gate's."""
        return column.severity or self.check_severity(check)

    @property
    def missing_days(self) -> MissingDays:
        """What a day without source data is: a failure (`fail`) or a day without events (`empty`)."""
        return self.source.missing_days

    def _entity_resolves(self) -> None:
        if self.entity_column is not None:
            return
        if self.grain == "entity_day":
            raise ValueError("entity_column: Field required (one row per entity and day needs the entity)")
        for index, feature in enumerate(self.features):
            if feature.agg not in EVENT_AGGS and not feature.by:
                raise ValueError(
                    f"features[{index}] ({feature.name}): with no entity_column, a window feature needs "
                    "by: [columns] naming whose history it aggregates"
                )

    @property
    def subject(self) -> str:
        """What one row is about, in words and as the column that names it: the entity, else the event."""
        return self.entity_column or self.event_key

    @property
    def event_key(self) -> str:
        """The column identifying an event: the spec's event id, or the content-derived ROW_ID."""
        return self.event_id_column or ROW_ID

    @property
    def key_columns(self) -> list[str]:
        """Columns identifying a feature/prediction row within a day."""
        keys = (self.entity_column,) if self.grain == "entity_day" else (self.event_key, self.entity_column)
        return [key for key in keys if key]

    def column(self, name: str) -> ColumnSpec:
        if name == ROW_ID and self.event_id_column is None:
            return ColumnSpec(name=ROW_ID, dtype="string", description="Event id derived from the event's content")
        return next(column for column in self.columns if column.name == name)


MAX_SPEC_BYTES = 256 * 1024


class _SpecLoader(yaml.CSafeLoader):
    """Safe YAML, parsed by libyaml (pure-Python parsing was ~0.06 s a spec in every process that loads the code
    location), without what hides mistakes: a repeated key (the last would silently win). Anchors and aliases
    are refused before construction by `_refuse_aliases`."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in the same mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# Dates stay text for pydantic to parse, so a malformed one (2001-02-30) is reported with its file and field;
# YAML's own date parsing raises a bare ValueError.
# types-PyYAML types add_constructor's function for the base loader class only
_SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)  # type: ignore[type-var]


def _refuse_aliases(text: str) -> None:
    """Anchors and aliases are refused: a few lines of them expand to gigabytes. Checked on libyaml's event
    stream, before anything is composed."""
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (*name) are not allowed in a spec; write the values out",
                event.start_mark,  # type: ignore[arg-type]  # libyaml's Mark: the same fields as yaml.error.Mark
            )


def load_spec(path: str | Path) -> UseCaseSpec:
    """Load and validate one spec file; any problem raises SpecError naming file and field."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {path.stat().st_size} bytes; a spec is at most {MAX_SPEC_BYTES} bytes")
        text = path.read_text()
        _refuse_aliases(text)
        raw = yaml.load(text, Loader=_SpecLoader)
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"{path}: cannot read spec: {error}") from error
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return UseCaseSpec.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(_describe(issue) for issue in error.errors(include_url=False))
        raise SpecError(f"{path}: invalid use-case spec: {problems}") from None


def _describe(issue: ErrorDetails) -> str:
    """'field.path: message'; cross-field rules already start their message with the field."""
    message = str(issue["msg"]).removeprefix("Value error, ")
    path = _field_path(issue["loc"])
    return f"{path}: {message}" if path else message


def _field_path(location: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif not re.fullmatch(r"files|postgres|function-after\[.*\]", str(part)):
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)
