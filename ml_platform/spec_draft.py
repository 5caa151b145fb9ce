"""`ml-platform new-use-case NAME --from-data DIR`: a spec drafted from every day file.

Every file is read once, one at a time (`history_scan`): each column's dtype, null limit, range and closed
set, the event id (unique within and across every day) and the calendar's gaps come from all the data, so
the limits hold on the days a sample would have missed. The roles (timestamp, label, entity) and the default
features are guessed on the first rows of a few days spread over the history. The spec says in comments what
each limit was learned from and its margin; learned limits warn, structural checks block. It loads,
validates and trains as written.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import textwrap
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ml_platform.history_scan import ALLOWED_VALUES_AT_MOST, ColumnHistory, History, scan_history
from ml_platform.resources.sources.files import CSV_DTYPES, DAY_FILE
from ml_platform.spec import NAME_PATTERN, load_spec

SAMPLE_DAYS = 7  # days whose first rows guess the roles and features
SAMPLE_ROWS_PER_DAY = 20_000
CATEGORY_AT_MOST = 200  # more distinct values than this is an identifier or free text, not a category
ROWS_PER_ALLOWED_VALUE = 20  # a closed set needs this many rows a value: fewer, and a missing value is chance
NULL_MARGIN = 0.25  # a null limit is the worst day's fraction plus this share of it ...
NULL_MARGIN_AT_LEAST = 0.01  # ... and at least this, rounded up to a whole percent
# text timestamps beyond ISO 8601 that exports commonly use; one that reads every sampled value is taken
TIMESTAMP_FORMATS = [
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%Y%m%d%H%M%S",
]
POSITIVE_WORDS = {"yes", "y", "true", "t", "positive", "pos"}  # a string label's value that reads as 1
MARGINS = (
    f"Limits come from every day file. A null limit is the worst day's null fraction plus {NULL_MARGIN:.0%} of it "
    f"(at least {NULL_MARGIN_AT_LEAST} more), rounded up to the percent. A numeric column never negative gets "
    "min_value 0 and no column gets a max_value: a history's largest value is the one its next rare day exceeds. "
    f"allowed_values closes a string column only with at most {ALLOWED_VALUES_AT_MOST} values, every one already "
    f"seen in the first half of the history and at least {ROWS_PER_ALLOWED_VALUE} rows a value."
)
SEVERITIES = (
    "gates.severity: the limits learned from the data (null_fraction, value_ranges) warn: a day beyond them is "
    "recorded as a WARN and goes through. The structural checks block the day (it is not ingested and nothing "
    "downstream of it runs): landed, schema, min_rows, unique_event_ids, timestamps_in_partition and the label's "
    "validity (values other than its two). The label column's severity: warn lets a day with more unknown "
    "outcomes than its max_null_fraction through; an event id column's severity: block stops a day with a null id."
)


@dataclass(frozen=True)
class Roles:
    timestamp: str
    timestamp_format: str | None  # how timestamp text reads: "ISO8601", a strftime format, or None when typed
    label: str
    event_id: str | None
    entity: str | None


def draft_spec(
    name: str,
    data_dir: Path,
    directory: Path,
    label: str | None = None,
    timestamp: str | None = None,
    entity: str | None = None,
    positive: str | None = None,
    progress: bool = True,
) -> str:
    """The YAML text of a spec for the day files in `directory` (which must lie inside `data_dir`)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"use-case name '{name}' must match {NAME_PATTERN} (lower_snake_case)")
    files, file_format = day_files(directory)
    relative = _relative(directory, data_dir)  # before the long read
    history = scan_history(files, file_format, progress)
    declared = [column for column in history.columns.values() if _declarable(column, history)]
    frame = read_sample(files, history, [column.name for column in declared])
    roles = _roles(frame, history, directory, label, timestamp, entity)
    positive = _label_values(history.columns[roles.label], positive)
    spec, notes = _spec(name, history, declared, frame, roles, relative)
    if positive is not None:
        spec["label"]["positive"] = positive
    return _render(spec, notes, _header(name, directory, history))


def day_files(directory: Path) -> tuple[list[Path], str]:
    """The day files of `directory` in day order, and their one format."""
    files = sorted(path for path in directory.iterdir() if DAY_FILE.match(path.name) and path.is_file())
    if not files:
        raise ValueError(f"{directory}: no day files named YYYY-MM-DD.csv or YYYY-MM-DD.parquet")
    formats = {path.suffix.lstrip(".") for path in files}
    if len(formats) > 1:
        raise ValueError(f"{directory}: mixed formats {sorted(formats)}; one format per use case")
    return files, formats.pop()


def read_sample(files: list[Path], history: History, columns: list[str]) -> pd.DataFrame:
    """The first SAMPLE_ROWS_PER_DAY rows of SAMPLE_DAYS day files spread over the history, each column read
    with the type the whole history gives it (as the runtime reads it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dtypes: dict[Hashable, type[str] | str] = {  # keyed as pandas' read_csv types its dtype mapping
        name: CSV_DTYPES[dtype]
        for name in columns
        if (dtype := history.columns[name].dtype) is not None and dtype in CSV_DTYPES
    }
    frames = []
    for path in files[:: max(1, len(files) // SAMPLE_DAYS)][:SAMPLE_DAYS]:
        try:
            if history.file_format == "csv":
                frames.append(pd.read_csv(path, usecols=columns, dtype=dtypes, nrows=SAMPLE_ROWS_PER_DAY))
            else:
                batches = pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS_PER_DAY, columns=columns)
                first = next(batches, None)
                frames.append(
                    pa.Table.from_batches([first]).to_pandas()
                    if first is not None
                    else pq.read_schema(path).empty_table().select(columns).to_pandas()
                )
        except Exception as error:  # any parser error: name the file
            raise ValueError(f"{path}: cannot read: {type(error).__name__}: {error}") from error
    return pd.concat(frames, ignore_index=True)[columns]


def _declarable(column: ColumnHistory, history: History) -> bool:
    """A spec column: in every day file, with values of a type the platform reads."""
    return (
        column.files == len(history.days)
        and column.dtype not in (None, "unsupported")
        and not (column.dtype == "bool" and column.widened_by_nulls)
    )


def _roles(
    frame: pd.DataFrame, history: History, directory: Path, label: str | None, timestamp: str | None, entity: str | None
) -> Roles:
    timestamp = timestamp or _only(_timestamp_candidates(frame), "timestamp", "--timestamp")
    label = label or _only(_binary_columns(frame, history), "label (a 0/1 outcome)", "--label")
    for role, column in (("--timestamp", timestamp), ("--label", label), ("--entity", entity)):
        if column is not None and column not in frame.columns:
            raise ValueError(f"{role} '{column}' is not a column of every file in {directory}: {list(frame.columns)}")
    times = frame[timestamp]
    form = None if pd.api.types.is_datetime64_any_dtype(times) else _timestamp_format(times)
    if not pd.api.types.is_datetime64_any_dtype(times) and form is None:
        raise ValueError(
            f"--timestamp '{timestamp}': values such as {times.dropna().astype(str).head(3).tolist()} read "
            f"as neither ISO 8601 nor exactly one of {TIMESTAMP_FORMATS} (day-first and month-first "
            "both fit when every day is 12 or less: land days after the 12th, or set "
            "source.timestamp_format in a scaffolded spec)"
        )
    event_id = next(
        (name for name in frame.columns if name not in (timestamp, label) and history.columns[name].is_id), None
    )
    candidates = _entity_candidates(frame, {timestamp, label, event_id})
    entity = entity or (_only(candidates, "entity (whose history matters)", "--entity") if candidates else None)
    return Roles(timestamp, form, label, event_id, entity)


def _label_values(column: ColumnHistory, positive: str | None) -> str | None:
    """The label's positive value if it is a string flag; a numeric label must be 0/1 on every day."""
    if column.dtype == "string":
        values = sorted(column.first_seen or ())
        if column.first_seen is None or len(values) != 2:
            raise ValueError(
                f"--label '{column.name}' is a string column with "
                f"{column.open_because or f'{len(values)} values {values}'} over the day files; a "
                "label needs exactly two (null where the outcome is unknown)"
            )
        return _positive_value(values, column.name, positive)
    if positive is not None:
        raise ValueError(f"--positive is for a string label; '{column.name}' is {column.dtype} (1 is positive)")
    if (
        column.dtype != "bool"
        and column.minimum is not None
        and column.maximum is not None
        and (column.minimum < 0 or column.maximum > 1)
    ):
        raise ValueError(
            f"--label '{column.name}' ranges from {column.minimum} to {column.maximum} over the day "
            "files; a flag is 0/1 (null where the outcome is unknown)"
        )
    return None


def _spec(
    name: str, history: History, declared: list[ColumnHistory], frame: pd.DataFrame, roles: Roles, directory: str
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The spec, and the comments that go above its keys (a column's under `columns.<name>`)."""
    dtypes = {column.name: _spec_dtype(column, roles) for column in declared}
    notes: dict[str, list[str]] = {"columns": [MARGINS]}
    columns = []
    for column in declared:
        spec, facts = _column(column, dtypes[column.name], roles, history)
        columns.append(spec)
        notes[f"columns.{column.name}"] = [f"{column.name}: {'; '.join(facts)}"]
    entity = roles.entity
    nullable = {column.name for column in declared if column.worst_null}
    features = _features(
        frame,
        dtypes,
        nullable,
        {roles.timestamp, roles.label, roles.event_id, entity},
        reserved={"day", "row_id", entity, roles.event_id},
        history=entity is not None,
    )
    unused = [name for name in nullable - {roles.label} if dtypes[name] in ("int64", "float64", "bool")]
    if unused:
        notes["features"] = [
            f"Not features: {sorted(unused)}, numbers with nulls on some days (a null feature value "
            "fails the blocking feature_nulls gate): fill them in the export to use them."
        ]
    source: dict[str, Any] = {"kind": "files", "directory": directory, "format": history.file_format}
    if roles.timestamp_format not in (None, "ISO8601"):
        source["timestamp_format"] = roles.timestamp_format
    first, last = (dt.date.fromisoformat(day) for day in (history.days[0], history.days[-1]))
    span = (last - first).days + 1
    if span > len(history.days):
        source["missing_days"] = "empty"
        notes["source"] = [
            f"source.missing_days: empty: {span - len(history.days):,} of the {span:,} days from {first} "
            f"to {last} have no file (weekends, holidays, field campaigns?): a day without a file is a "
            "day without events, stored empty. Set it to fail if every day must deliver a file."
        ]
    fewest, smallest_day = history.fewest_rows or (0, "")
    notes["gates"] = [SEVERITIES]
    if not fewest:
        notes["gates"].append(f"gates.min_rows_per_day: 0: {smallest_day}.{history.file_format} has no rows")
    left_out = [
        f"'{column.name}' ({_why_left_out(column, history)})"
        for column in history.columns.values()
        if not _declarable(column, history)
    ]
    if left_out:
        notes["columns"].append(f"Left out: {', '.join(left_out)}.")
    return {
        "name": name,
        "description": f"{name}: predicts '{roles.label}' for each event from its own attributes"
        + (f" and the history of its '{entity}'" if entity else "")
        + f" (drafted from {len(history.days)} day files; edit to say what it means).",
        "owners": ["team:ml-platform"],
        "start_date": history.days[0],
        "grain": "event",
        "source": source,
        **({"entity_column": entity} if entity else {}),
        "timestamp_column": roles.timestamp,
        **({"event_id_column": roles.event_id} if roles.event_id else {}),
        "columns": columns,
        "label": {"kind": "event_flag", "column": roles.label, "horizon_days": 0},
        "features": features,
        "model": {
            "type": "sklearn_random_forest",
            "params": {"n_estimators": 100, "max_depth": 12, "min_samples_leaf": 5},
        },
        "training": {"window_days": 28, "holdout_days": 7, "seed": 7},
        "gates": {
            "min_rows_per_day": 1 if fewest else 0,
            "min_metrics": {"roc_auc": 0.55},
            "compare_metric": "roc_auc",
            "severity": {"null_fraction": "warn", "value_ranges": "warn"},
        },
    }, notes


def _spec_dtype(column: ColumnHistory, roles: Roles) -> str:
    """The timestamp role is a timestamp; a Parquet integer column with nulls pandas reads as float64."""
    if column.name == roles.timestamp:
        return "timestamp"
    if column.dtype is None:  # always null: such a column is left out before it gets here
        raise ValueError(f"column '{column.name}' is always null: it has no dtype to declare")
    return "float64" if column.dtype == "int64" and column.widened_by_nulls else column.dtype


def _column(column: ColumnHistory, dtype: str, roles: Roles, history: History) -> tuple[dict[str, Any], list[str]]:
    """A column's spec and what each of its limits was learned from."""
    spec: dict[str, Any] = {"name": column.name, "dtype": dtype}
    facts = []
    if column.worst_null:
        spec["max_null_fraction"] = _null_limit(column.worst_null)
        facts.append(
            f"{column.worst_null:.1%} null on its worst day ({column.worst_null_day}), limit "
            f"{spec['max_null_fraction']:.0%}"
        )
    else:
        facts.append("never null")
    if dtype in ("int64", "float64") and column.minimum is not None and column.name != roles.event_id:
        facts.append(f"values {column.minimum:,} to {column.maximum:,}")
        if column.minimum >= 0:
            spec["min_value"] = 0
            facts[-1] += ", never negative"
    if column.name == roles.label:
        spec["severity"] = "warn"
        if dtype == "string":
            spec["allowed_values"] = sorted(column.first_seen or {})
        facts.append(
            f"the label: more unknown outcomes than its limit warn, values other than "
            f"{spec.get('allowed_values', '0/1')} block"
        )
    elif column.name == roles.event_id:
        spec["severity"] = "block"
        facts.append(f"the event id: unique within every day and across all days ({_id_check(column)})")
    elif column.name == roles.timestamp:
        facts.append("the timestamp: one outside its file's day, or null, blocks the day")
    elif dtype == "string":
        closed, why = _closed_set(column, history.days)
        if closed:
            spec["allowed_values"] = closed
        facts.append(why)
    if column.name == roles.entity:
        facts.append("the entity, whose history makes the window features")
    return spec, facts


def _null_limit(worst: float) -> float:
    margin = max(NULL_MARGIN_AT_LEAST, worst * NULL_MARGIN)
    return min(1.0, math.ceil(round((worst + margin) * 100, 6)) / 100)


def _closed_set(column: ColumnHistory, days: list[str]) -> tuple[list[str] | None, str]:
    """allowed_values when the values are stable over the whole history: few, none first seen in its second
    half, and enough rows that a value missing from them is not chance. Else None, and why."""
    if column.first_seen is None:
        return None, f"allowed_values left open: {column.open_because}"
    values = sorted(column.first_seen)
    halfway = days[(len(days) - 1) // 2]  # the last day of the history's first half
    late = sorted(value for value, day in column.first_seen.items() if day > halfway)
    if late:
        return None, (
            f"allowed_values left open: {len(late)} of its {len(values)} values first appeared after "
            f"{halfway} (the first half of the history): {late[:5]}"
        )
    if not values or column.known < ROWS_PER_ALLOWED_VALUE * len(values):
        return None, f"allowed_values left open: {column.known:,} values known, too few to close a set of {len(values)}"
    return values, f"allowed_values: its {len(values)} values, every one seen by {halfway}, none new since"


def _id_check(column: ColumnHistory) -> str:
    bits = column.ids.sample_bits if column.ids is not None else 0
    return "exact" if not bits else f"across days on a 1 in {2**bits:,} hash sample of the values"


def _why_left_out(column: ColumnHistory, history: History) -> str:
    if column.files < len(history.days):
        return f"in {column.files} of {len(history.days)} files"
    if column.dtype == "bool":
        return "booleans with nulls, which pandas reads from Parquet as objects: no dtype matches them"
    return (
        "always null" if column.dtype is None else "not a type the platform reads (numbers, text, booleans, timestamps)"
    )


def _features(
    frame: pd.DataFrame,
    dtypes: dict[str, str],
    nullable: set[str],
    roles: set[str | None],
    reserved: set[str | None],
    history: bool,
) -> list[dict[str, Any]]:
    """The event's own numbers (never null: a null feature value fails the blocking feature_nulls gate) and
    categories, its hour, and (with an entity) its entity's recent activity."""
    features: list[dict[str, Any]] = []
    for column in frame.columns:
        if column in roles:
            continue
        kind, name = dtypes[column], _feature_name(column)
        name = f"{name}_value" if name in reserved else name  # feature rows also hold the keys and the day
        if kind in ("int64", "float64", "bool") and column not in nullable:
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
    return [
        column
        for column in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[column]) or _timestamp_format(frame[column]) is not None
    ]


def _timestamp_format(series: pd.Series) -> str | None:
    """How a column of text timestamps reads: "ISO8601", the one TIMESTAMP_FORMATS entry that reads every
    sampled value, or None (not timestamps, or ambiguous between day-first and month-first)."""
    values = series.dropna()
    if series.dtype != object or not len(values):
        return None
    values = values.astype(str).sample(min(len(values), 5000), random_state=0)  # from every sampled day
    if pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601").notna().mean() > 0.95:
        return "ISO8601"
    fitting = [
        form
        for form in TIMESTAMP_FORMATS
        if pd.to_datetime(values, errors="coerce", utc=True, format=form).notna().all()
    ]
    return fitting[0] if len(fitting) == 1 else None


def _binary_columns(frame: pd.DataFrame, history: History) -> list[str]:
    """0/1 columns, and two-valued string columns with a yes-like value ("YES"/"NO", "true"/"false"): in the
    sample and on every day."""
    found = []
    for column in frame.columns:
        values, seen = set(frame[column].dropna().unique()), history.columns[column]
        if not values:
            continue
        if pd.api.types.is_numeric_dtype(frame[column]) and values <= {0, 1}:
            if seen.dtype == "bool" or (
                seen.minimum is not None and seen.maximum is not None and seen.minimum >= 0 and seen.maximum <= 1
            ):
                found.append(column)
        elif (
            len(values) == 2
            and {str(value).lower() for value in values} & POSITIVE_WORDS
            and seen.first_seen is not None
            and len(seen.first_seen) == 2
        ):
            found.append(column)
    return found


def _positive_value(values: list[str], label: str, positive: str | None) -> str:
    """The string label's value that means 1: `--positive`, else the yes-like one of its two values."""
    if positive is not None:
        if positive not in values:
            raise ValueError(f"--positive '{positive}' is not a value of '{label}': {values}")
        return positive
    yes_like = [value for value in values if value.lower() in POSITIVE_WORDS]
    return _only(yes_like, f"positive value of '{label}' (one of {values})", "--positive", "VALUE")


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


def _only(candidates: list[str], what: str, option: str, argument: str = "COLUMN") -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(f"found no column that looks like the {what}; name it with {option} {argument}")
    raise ValueError(f"several columns could be the {what}: {candidates}; choose one with {option} {argument}")


def _relative(directory: Path, data_dir: Path) -> str:
    resolved, root = directory.resolve(), data_dir.resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(
            f"{directory} is outside the data directory {root}: land the files under it "
            "(or set ML_PLATFORM_DATA_DIR to a directory above them)"
        )
    return str(resolved.relative_to(root))


def _header(name: str, directory: Path, history: History) -> list[str]:
    return [
        f"Use case '{name}', drafted by `ml-platform new-use-case {name} --from-data {directory}` on {dt.date.today()} "
        f"from all {len(history.days):,} day files ({history.days[0]} to {history.days[-1]}, {history.rows:,} rows); "
        f"roles and features guessed on the first rows of {min(SAMPLE_DAYS, len(history.days))} of them.",
        "Check: the label, the entity and the event id it chose; the column limits (each a gate, see gates); owners "
        "and description. Unknown labels (blank/null) are scored but not trained on, up to the label column's "
        "max_null_fraction. The model gate thresholds are a starting point.",
    ]


def _render(spec: dict[str, Any], notes: dict[str, list[str]], header: list[str]) -> str:
    """YAML with each note as a comment above its key (a column's above its item)."""
    parts = [_comment(line) for line in header]
    for key, value in spec.items():
        parts += [_comment(line) for line in notes.get(key, [])]
        if key != "columns":
            parts.append(yaml.safe_dump({key: value}, sort_keys=False, width=120))
            continue
        parts.append("columns:\n")
        for column in value:
            parts += [_comment(line) for line in notes.get(f"columns.{column['name']}", [])]
            parts.append(yaml.safe_dump([column], sort_keys=False, width=120))
    return "".join(parts)


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in textwrap.wrap(text, width=116, subsequent_indent="  "))


def write_drafted_spec(
    name: str,
    directory: Path,
    data_dir: Path,
    target_dir: Path,
    label: str | None = None,
    timestamp: str | None = None,
    entity: str | None = None,
    positive: str | None = None,
) -> Path:
    """Draft, validate by loading it, and write `<target_dir>/<name>.yaml` (never over an existing file)."""
    target = target_dir / f"{name}.yaml"
    if target.exists():
        raise ValueError(f"{target} already exists; it is not overwritten")
    text = draft_spec(name, data_dir, directory, label=label, timestamp=timestamp, entity=entity, positive=positive)
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    try:
        load_spec(target)
    except Exception:
        target.unlink()
        raise
    return target
