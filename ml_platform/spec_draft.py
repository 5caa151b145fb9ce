"""`ml-platform new-use-case NAME --from-data DIR`: a spec drafted from a sample of the day files.

It infers each column's dtype, null fraction, range and (for a handful of values) allowed values, the
timestamp, the label, an event id if one column is unique, and the entity whose history becomes window
features; then writes a commented spec that loads, validates and trains as written. Every guess is a
comment in the file, so the reader sees what to check.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ml_platform.resources.sources.files import DAY_FILE
from ml_platform.spec import NAME_PATTERN, load_spec

SAMPLE_DAYS = 7
ALLOWED_VALUES_AT_MOST = 10  # a string column with this few values is a closed set: its values become a gate
CATEGORY_AT_MOST = 200  # more distinct values than this is an identifier or free text, not a category
# text timestamps beyond ISO 8601 that exports commonly use; one that reads every sampled value is taken
TIMESTAMP_FORMATS = ["%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S",
                     "%Y/%m/%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%m/%d/%Y", "%d/%m/%Y", "%Y%m%d%H%M%S"]
POSITIVE_WORDS = {"yes", "y", "true", "t", "positive", "pos"}  # a string label's value that reads as 1


@dataclass(frozen=True)
class Sample:
    frame: pd.DataFrame  # the sampled days' rows, with a `__day` column
    days: list[str]  # every landed day (not only the sampled ones)
    file_format: str


def draft_spec(name: str, data_dir: Path, directory: Path, label: str | None = None, timestamp: str | None = None,
               entity: str | None = None, positive: str | None = None) -> str:
    """The YAML text of a spec for the day files in `directory` (which must lie inside `data_dir`)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"use-case name '{name}' must match {NAME_PATTERN} (lower_snake_case)")
    sample = read_sample(directory)
    frame = sample.frame.drop(columns="__day")
    timestamp = timestamp or _only(_timestamp_candidates(frame), "timestamp", "--timestamp")
    label = label or _only(_binary_columns(frame), "label (a 0/1 outcome)", "--label")
    for role, column in (("--timestamp", timestamp), ("--label", label), ("--entity", entity)):
        if column is not None and column not in frame.columns:
            raise ValueError(f"{role} '{column}' is not a column of the files in {directory}: {list(frame.columns)}")
    times = frame[timestamp]
    form = None if pd.api.types.is_datetime64_any_dtype(times) else _timestamp_format(times)
    if not pd.api.types.is_datetime64_any_dtype(times) and form is None:
        raise ValueError(f"--timestamp '{timestamp}': values such as {times.dropna().astype(str).head(3).tolist()} read "
                         f"as neither ISO 8601 nor exactly one of {TIMESTAMP_FORMATS} (day-first and month-first "
                         "both fit when every day is 12 or less: land days after the 12th, or set "
                         "source.timestamp_format in a scaffolded spec)")
    event_id = next((c for c in frame.columns if c not in (timestamp, label) and _is_identifier(frame[c])), None)
    candidates = _entity_candidates(frame, {timestamp, label, event_id})
    entity = entity or (_only(candidates, "entity (whose history matters)", "--entity") if candidates else None)
    spec = _spec(name, sample, _relative(directory, data_dir), timestamp, form, label, event_id, entity)
    if _dtype(frame[label]) == "string":
        spec["label"]["positive"] = _positive_value(frame[label], label, positive)
        next(column for column in spec["columns"] if column["name"] == label)["allowed_values"] = sorted(
            str(value) for value in frame[label].dropna().unique())
    elif positive is not None:
        raise ValueError(f"--positive is for a string label; '{label}' is {_dtype(frame[label])} (1 is positive)")
    return _with_comments(name, spec, sample, directory)


def read_sample(directory: Path) -> Sample:
    """Up to SAMPLE_DAYS day files spread over everything landed in `directory`."""
    files = sorted(path for path in directory.iterdir() if DAY_FILE.match(path.name) and path.is_file())
    if not files:
        raise ValueError(f"{directory}: no day files named YYYY-MM-DD.csv or YYYY-MM-DD.parquet")
    formats = {path.suffix.lstrip(".") for path in files}
    if len(formats) > 1:
        raise ValueError(f"{directory}: mixed formats {sorted(formats)}; one format per use case")
    step = max(1, len(files) // SAMPLE_DAYS)
    chosen = files[::step][:SAMPLE_DAYS]
    frames = []
    for path in chosen:
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except Exception as error:  # any parser error: name the file
            raise ValueError(f"{path}: cannot read: {type(error).__name__}: {error}") from error
        frames.append(frame.assign(__day=path.stem))
    return Sample(pd.concat(frames, ignore_index=True), [path.stem for path in files], formats.pop())


def _spec(name: str, sample: Sample, directory: str, timestamp: str, form: str | None, label: str,
          event_id: str | None, entity: str | None) -> dict[str, Any]:
    """`form`: how the timestamp text reads ("ISO8601", a strftime format, or None for typed timestamps)."""
    frame = sample.frame.drop(columns="__day")
    columns = [_column(frame, sample.frame["__day"], column, timestamp) for column in frame.columns]
    features = _features(frame, {timestamp, label, event_id, entity}, reserved={"day", "row_id", entity, event_id},
                         history=entity is not None)
    return {
        "name": name,
        "description": f"{name}: predicts '{label}' for each event from its own attributes"
                       + (f" and the history of its '{entity}'" if entity else "")
                       + f" (drafted from {len(sample.days)} day files; edit to say what it means).",
        "owners": ["team:ml-platform"],
        "start_date": sample.days[0],
        "grain": "event",
        "source": {"kind": "files", "directory": directory, "format": sample.file_format,
                   **({"timestamp_format": form} if form not in (None, "ISO8601") else {})},
        **({"entity_column": entity} if entity else {}),
        "timestamp_column": timestamp,
        **({"event_id_column": event_id} if event_id else {}),
        "columns": columns,
        "label": {"kind": "event_flag", "column": label, "horizon_days": 0},
        "features": features,
        "model": {"type": "sklearn_random_forest", "params": {"n_estimators": 100, "max_depth": 12, "min_samples_leaf": 5}},
        "training": {"window_days": 28, "holdout_days": 7, "seed": 7},
        "gates": {"min_rows_per_day": 1, "min_metrics": {"roc_auc": 0.55}, "compare_metric": "roc_auc"},
    }


def _column(frame: pd.DataFrame, days: pd.Series, column: str, timestamp: str) -> dict[str, Any]:
    series = frame[column]
    spec: dict[str, Any] = {"name": column, "dtype": "timestamp" if column == timestamp else _dtype(series)}
    worst_null = float(series.isna().groupby(days).mean().max())
    if worst_null:
        spec["max_null_fraction"] = min(1.0, math.ceil(worst_null * 1.5 * 100) / 100)  # room for a worse day
    if spec["dtype"] in ("int64", "float64") and series.dropna().ge(0).all():
        spec["min_value"] = 0
    values = series.dropna().unique()
    if spec["dtype"] == "string" and len(values) <= ALLOWED_VALUES_AT_MOST and len(series) >= 20 * len(values):
        spec["allowed_values"] = sorted(str(value) for value in values)
    return spec


def _dtype(series: pd.Series) -> str:
    known = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series) or (pd.api.types.is_float_dtype(series) and known.eq(known.round()).all()
                                                  and series.isna().any() and len(known)):
        return "int64"  # a CSV integer column with blanks reads as float: the spec keeps it an integer
    if pd.api.types.is_numeric_dtype(series):
        return "float64"
    return "string"


def _features(frame: pd.DataFrame, roles: set[str | None], reserved: set[str | None], history: bool) -> list[dict[str, Any]]:
    """The event's own numbers and categories, its hour, and (with an entity) its entity's recent activity."""
    features: list[dict[str, Any]] = []
    for column in frame.columns:
        if column in roles:
            continue
        kind, name = _dtype(frame[column]), _feature_name(column)
        name = f"{name}_value" if name in reserved else name  # feature rows also hold the keys and the day
        if kind in ("int64", "float64", "bool"):
            features.append({"name": name, "agg": "value", "column": column})
        elif kind == "string" and frame[column].nunique() <= CATEGORY_AT_MOST:
            encoding = "one_hot" if frame[column].nunique() <= 20 else "target"
            features.append({"name": name, "agg": "category", "column": column, "encoding": encoding})
    features.append({"name": "event_hour", "agg": "hour"})
    if history:
        features += [{"name": f"entity_events_{days}d", "agg": "count", "window_days": days} for days in (1, 7)]
    return features


def _feature_name(column: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_]", "_", column.lower()).strip("_") or "feature"
    return cleaned if cleaned[0].isalpha() else f"f_{cleaned}"


def _timestamp_candidates(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[column])
            or _timestamp_format(frame[column]) is not None]


def _timestamp_format(series: pd.Series) -> str | None:
    """How a column of text timestamps reads: "ISO8601", the one TIMESTAMP_FORMATS entry that reads every
    sampled value, or None (not timestamps, or ambiguous between day-first and month-first)."""
    values = series.dropna()
    if series.dtype != object or not len(values):
        return None
    values = values.astype(str).sample(min(len(values), 5000), random_state=0)  # from every sampled day
    if pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601").notna().mean() > 0.95:
        return "ISO8601"
    fitting = [form for form in TIMESTAMP_FORMATS
               if pd.to_datetime(values, errors="coerce", utc=True, format=form).notna().all()]
    return fitting[0] if len(fitting) == 1 else None


def _binary_columns(frame: pd.DataFrame) -> list[str]:
    """0/1 columns, and two-valued string columns with a yes-like value ("YES"/"NO", "true"/"false")."""
    found = []
    for column in frame.columns:
        values = set(frame[column].dropna().unique())
        if not values:
            continue
        if pd.api.types.is_numeric_dtype(frame[column]) and values <= {0, 1}:
            found.append(column)
        elif len(values) == 2 and {str(value).lower() for value in values} & POSITIVE_WORDS:
            found.append(column)
    return found


def _positive_value(series: pd.Series, label: str, positive: str | None) -> str:
    """The string label's value that means 1: `--positive`, else the yes-like one of its two values."""
    values = sorted(str(value) for value in series.dropna().unique())
    if len(values) != 2:
        raise ValueError(f"--label '{label}' is a string column with {len(values)} values {values[:5]}; a label "
                         "needs exactly two (null where the outcome is unknown)")
    if positive is not None:
        if positive not in values:
            raise ValueError(f"--positive '{positive}' is not a value of '{label}': {values}")
        return positive
    yes_like = [value for value in values if value.lower() in POSITIVE_WORDS]
    return _only(yes_like, f"positive value of '{label}' (one of {values})", "--positive")


def _is_identifier(series: pd.Series) -> bool:
    return series.notna().all() and series.is_unique and (series.dtype == object or pd.api.types.is_integer_dtype(series))


def _entity_candidates(frame: pd.DataFrame, roles: set[str | None]) -> list[str]:
    """Columns whose values repeat (several events each) without being a small closed set."""
    found = []
    for column in frame.columns:
        series = frame[column].dropna()
        if column in roles or not (series.dtype == object or pd.api.types.is_integer_dtype(series)):
            continue
        distinct = series.nunique()
        if 2 <= distinct <= len(series) / 2 and distinct > ALLOWED_VALUES_AT_MOST:
            found.append(column)
    named = [column for column in found if column.lower().endswith(("_id", "id"))]
    return named or found


def _only(candidates: list[str], what: str, option: str) -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(f"found no column that looks like the {what}; name it with {option} COLUMN")
    raise ValueError(f"several columns could be the {what}: {candidates}; choose one with {option} COLUMN")


def _relative(directory: Path, data_dir: Path) -> str:
    resolved, root = directory.resolve(), data_dir.resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"{directory} is outside the data directory {root}: land the files under it "
                         "(or set ML_PLATFORM_DATA_DIR to a directory above them)")
    return str(resolved.relative_to(root))


def _with_comments(name: str, spec: dict[str, Any], sample: Sample, directory: Path) -> str:
    header = (
        f"# Use case '{name}', drafted by `ml-platform new-use-case {name} --from-data {directory}` on "
        f"{dt.date.today()} from {sample.frame['__day'].nunique()} of {len(sample.days)} day files "
        f"({len(sample.frame)} rows).\n"
        "# Check: the label, the entity and the event id it chose; the column limits (each is a gate: a day that\n"
        "# breaks one is not ingested); owners and description. Unknown labels (blank/null) are scored but not\n"
        "# trained on, up to the label column's max_null_fraction. The gate thresholds are a starting point.\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False, width=120)


def write_drafted_spec(name: str, directory: Path, data_dir: Path, target_dir: Path, **roles: str | None) -> Path:
    """Draft, validate by loading it, and write `<target_dir>/<name>.yaml` (never over an existing file)."""
    target = target_dir / f"{name}.yaml"
    if target.exists():
        raise ValueError(f"{target} already exists; it is not overwritten")
    text = draft_spec(name, data_dir, directory, **roles)
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    try:
        load_spec(target)
    except Exception:
        target.unlink()
        raise
    return target
