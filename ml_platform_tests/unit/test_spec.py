"""Spec validation: a bad spec fails at load, naming the file and the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from ml_platform.definitions import load_specs
from ml_platform.settings import SHIPPED_SPECS_DIR
from ml_platform.spec import SpecError, load_spec

CHURN = SHIPPED_SPECS_DIR / "churn.yaml"


def write_variant(tmp_path: Path, mutate) -> Path:
    document = yaml.safe_load(CHURN.read_text())
    mutate(document)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_shipped_spec_loads_with_expected_shape() -> None:
    spec = load_spec(CHURN)
    assert spec.name == "churn"
    assert spec.lookback_days == 28
    assert spec.label.horizon_days == 7
    assert spec.gates.min_metrics["accuracy"] == 0.85
    assert "logins_7d" in spec.feature_names


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (
            lambda d: d["features"][0].update(where={"column": "no_such_column", "equals": "x"}),
            "features[0]",
            "unknown column 'no_such_column'",
        ),
        (lambda d: d["features"][1].update(window_days=0), "features[1].window_days", "greater than or equal to 1"),
        (lambda d: d["model"].update(type="xgboost_magic"), "model.type", "sklearn_random_forest"),
        (lambda d: d["training"].update(holdout_days=60), "training.holdout_days", "smaller than"),
        (lambda d: d.pop("entity_column"), "entity_column", "Field required"),
        (lambda d: d.update(name="Bad Name"), "name", "pattern"),
        (lambda d: d["label"].update(column="plan"), "label.column", "int64"),
        (lambda d: d["label"].update(positive="yes"), "label.positive", "only for a string label column"),
        (lambda d: d["label"].update(column="plan", positive="pro"), "label.positive", "exactly two allowed_values"),
        (lambda d: d["features"][3].update(column="plan"), "features[3]", "not numeric"),
        (lambda d: d["gates"]["min_metrics"].update(accuracy=1.5), "gates.min_metrics", "[0, 1]"),
        (lambda d: d["columns"][0].update(dtype="decimal"), "columns[0].dtype", "string"),
        (lambda d: d.update(surprise=True), "surprise", "Extra inputs"),
        (lambda d: d["schedule"].update(retrain_cron="every monday"), "schedule.retrain_cron", "cron"),
        (lambda d: d["schedule"].update(timezone="Mars/Olympus"), "schedule.timezone", "IANA time zone"),
        (lambda d: d["gates"].update(significance_level=0.9), "gates.significance_level", "less than or equal to 0.5"),
        (lambda d: d["gates"].update(max_regression=0.01), "gates.max_regression", "Extra inputs"),
        (lambda d: d["features"].append({"name": "hour", "agg": "hour"}), "features[10] (hour)", "needs grain: event"),
        (lambda d: d["label"].update(kind="next_value", terminal=False), "label", "naive_feature"),
        (lambda d: d["gates"].update(compare_metric="mae"), "gates.compare_metric", "not a classification metric"),
        (lambda d: d["gates"]["min_metrics"].update(rmse=1.0), "gates.min_metrics", "lower-is-better"),
        (lambda d: d["features"][0].update(lags=3), "features[0]", "only valid with agg 'last'"),
        (lambda d: d.update(grain="event"), "label.kind", "event_flag"),
        # categories: string columns, one event's value, encoded by scikit-learn models
        (
            lambda d: d["features"].append({"name": "plan_kind", "agg": "category", "column": "amount"}),
            "features[10] (plan_kind)",
            "needs a string column",
        ),
        (
            lambda d: d["features"].append({"name": "plan_kind", "agg": "category", "column": "plan"}),
            "features[10] (plan_kind)",
            "needs grain: event",
        ),
        (lambda d: d["features"][0].update(encoding="target"), "features[0]", "only valid with agg 'category'"),
        (
            lambda d: (
                d["model"].update(type="torch_mlp", params={})
                or d["features"].append({"name": "plan_kind", "agg": "category", "column": "plan"})
            ),
            "features[10] (plan_kind)",
            "encoded by scikit-learn models",
        ),
        # events without an id: identified by their content, never by an id used as the entity
        (lambda d: d.update(entity_column="event_id"), "entity_column", "every window feature would count one event"),
        (
            lambda d: d.update(unique_columns=["customer_id"]),
            "unique_columns",
            "only for specs without event_id_column",
        ),
        (lambda d: d.update(event_id_column=None, unique_columns=["nope"]), "unique_columns", "not among the columns"),
        # nothing outside the data directory, no system catalogs, no absurd sizes or non-numbers
        (lambda d: d["source"].update(directory="../../etc"), "source.directory", "inside the data directory"),
        (lambda d: d["source"].update(directory="/etc"), "source.directory", "inside the data directory"),
        (
            lambda d: d["source"].update(format="csv", timestamp_format="mm/dd/yyyy"),
            "source.timestamp_format",
            "reads back",
        ),
        (lambda d: d["source"].update(format="parquet", timestamp_format="%m/%d/%Y"), "source", "for CSV files"),
        (
            lambda d: d.update(source={"kind": "postgres", "table": "pg_catalog.pg_authid"}),
            "source.table",
            "system catalog",
        ),
        (lambda d: d.update(start_date="1899-12-31"), "start_date", "must lie between 1900-01-01"),
        (lambda d: d.update(start_date="3000-01-01"), "start_date", "must lie between 1900-01-01"),
        (lambda d: d.update(start_date="2001-02-30"), "start_date", "day value is outside expected range"),
        (lambda d: d.update(start_date="1999-2-3"), "start_date", "valid date"),
        (lambda d: d.update(start_date=0), "start_date", "expected a date as YYYY-MM-DD, got 0"),
        (
            lambda d: d["model"]["params"].update(n_estimators=10**9),
            "model",
            "params.n_estimators: Input should be less than or equal to 5000",
        ),
        (
            lambda d: d["model"]["params"].update(n_estimator=10),
            "model",
            "params.n_estimator: Extra inputs are not permitted",
        ),
        (
            lambda d: next(c for c in d["columns"] if c["dtype"] == "float64").update(min_value=float("nan")),
            "min_value",
            "finite",
        ),
        (lambda d: d.setdefault("drift", {}).update(psi_threshold=float("inf")), "drift.psi_threshold", "finite"),
        (lambda d: d.update(owners=["the churn people"]), "owners", "email address or team:<name>"),
        (
            lambda d: d["schedule"].update(late_after_minutes=1441),
            "schedule.late_after_minutes",
            "less than or equal to 1440",
        ),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path: Path, mutate, field: str, words: str) -> None:
    path = write_variant(tmp_path, mutate)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    message = str(raised.value)
    assert str(path) in message
    assert field in message
    assert words in message


def test_shipped_specs_of_every_shape_load() -> None:
    specs = {spec.name: spec for spec in load_specs()}
    assert specs["fraud"].grain == "event" and specs["fraud"].key_columns == ["transaction_id", "card_id"]
    assert specs["fraud"].lookback_days == 31  # 30-day velocity over the days before the transaction's
    assert specs["prices"].label.task == "regression"
    assert (
        specs["prices"].feature_names[:2] == ["close_lag_0", "close_lag_1"] and len(specs["prices"].feature_names) == 28
    )


def test_unparsable_yaml_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: cannot read spec"):
        load_spec(path)


def test_user_spec_directory_is_loaded_and_duplicates_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_dir = tmp_path / "specs"
    user_dir.mkdir()
    document = yaml.safe_load(CHURN.read_text())
    document["name"] = "churn_eu"
    (user_dir / "churn_eu.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("ML_PLATFORM_SPECS_DIR", str(user_dir))
    assert {spec.name for spec in load_specs()} == {"churn", "churn_eu", "fraud", "news", "prices"}

    document["name"] = "churn"
    (user_dir / "churn_eu.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match="unique"):
        load_specs()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: churn\nname: churn2\n", "key 'name' appears twice"),
        ("model:\n  params: &p {n_estimators: 1}\nother: *p\n", "anchors and aliases"),
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: [*b, *b, *b, *b, *b, *b]\n",
            "anchors and aliases",
        ),
    ],
)
def test_repeated_keys_and_yaml_aliases_are_refused_with_the_line(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "tricky.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(path) in str(raised.value) and words in str(raised.value) and "line" in str(raised.value)


def test_an_oversized_spec_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("description: " + "x" * 300_000 + "\n")
    with pytest.raises(SpecError, match="a spec is at most 262144 bytes"):
        load_spec(path)


@pytest.mark.parametrize("start", ["1900-01-01", "1969-07-20", "1999-12-31"])
def test_start_date_may_be_any_real_history_from_1900(tmp_path: Path, start: str) -> None:
    assert load_spec(write_variant(tmp_path, lambda d: d.update(start_date=start))).start_date.isoformat() == start


def test_start_date_up_to_a_year_ahead(tmp_path: Path) -> None:
    ahead = (dt.date.today() + dt.timedelta(days=366)).isoformat()
    assert load_spec(write_variant(tmp_path, lambda d: d.update(start_date=ahead))).start_date.isoformat() == ahead


@pytest.mark.parametrize(
    ("written", "words"),
    [("2001-02-30", "day value is outside expected range"), ("1999-01-01 05:00:00", "should have zero time")],
)
def test_an_unquoted_malformed_date_names_file_and_field(tmp_path: Path, written: str, words: str) -> None:
    """YAML reads an unquoted date itself; a malformed one must still be a SpecError naming start_date."""
    path = tmp_path / "unquoted.yaml"
    path.write_text(CHURN.read_text().replace('start_date: "2025-01-01"', f"start_date: {written}"))
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(path) in str(raised.value) and "start_date: " in str(raised.value) and words in str(raised.value)


def test_an_estimated_performance_gate_on_a_metric_scores_cannot_estimate_is_refused(tmp_path: Path) -> None:
    document = yaml.safe_load((SHIPPED_SPECS_DIR / "news.yaml").read_text())
    document.setdefault("gates", {})["compare_metric"] = "macro_f1"
    document.setdefault("monitoring", {})["performance_source"] = "estimated"
    path = tmp_path / "news.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(
        SpecError,
        match=r"news.yaml.*monitoring.performance_source: 'estimated' gates on gates.compare_metric "
        r"'macro_f1', which is not estimated from scores for a multiclass task",
    ):
        load_spec(path)
    document["gates"]["compare_metric"] = "accuracy"
    path.write_text(yaml.safe_dump(document))
    assert load_spec(path).monitoring.performance_source == "estimated"
