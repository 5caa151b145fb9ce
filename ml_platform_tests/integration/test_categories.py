"""String categories as features, one spec line each: encoded inside the model (fitted on training days),
so the registered model scores raw categories, including values it never saw."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.fraud_csv import csv_fraud_spec, land_with_unknown_labels

CATEGORIES = [
    {"name": "merchant", "agg": "category", "column": "merchant_category", "encoding": "one_hot", "top_k": 4},
    {"name": "merchant_share", "agg": "category", "column": "merchant_category", "encoding": "frequency"},
    {"name": "channel_risk", "agg": "category", "column": "channel", "encoding": "target"},
]


def categorical_spec() -> UseCaseSpec:
    """Fraud with its category flags replaced by three encoded categories, on a random forest; any
    merchant category may come (no allowed_values), as in real exports."""
    data = csv_fraud_spec(max_null_fraction=0.5).model_dump()
    numeric = [f for f in data["features"] if f["agg"] != "flag"]
    columns = [{**c, "allowed_values": None} if c["name"] == "merchant_category" else c for c in data["columns"]]
    return UseCaseSpec.model_validate(
        {
            **data,
            "columns": columns,
            "features": [*numeric, *CATEGORIES],
            "model": {"type": "sklearn_random_forest", "params": {"n_estimators": 60, "max_depth": 8}},
            "gates": {**data["gates"], "min_metrics": {"roc_auc": 0.8}, "compare_metric": "roc_auc"},
            "resources": {"gpu": 0},
        }
    )


def test_categories_train_register_and_score_unseen_values(data_dir: Path) -> None:
    spec = categorical_spec()
    unknown = land_with_unknown_labels(data_dir, share=0.1)
    days = sorted(unknown)
    landing = data_dir / "landing" / "fraud_csv"
    newest = pd.read_csv(landing / f"{days[-1]}.csv")
    newest.loc[newest.index[:5], "merchant_category"] = "crypto_exchange"  # never seen in training
    newest.to_csv(landing / f"{days[-1]}.csv", index=False)

    defs, instance = build_definitions([spec]), dg.DagsterInstance.ephemeral()
    assert materialize_stages(defs, spec, ["raw_events", "features"], instance, days[:-1]).success
    features = DataLake(base_path=str(data_dir / "lake")).read(keys.features(spec), [days[-2]])
    assert pd.api.types.is_string_dtype(features["merchant"]) and set(features["merchant"]) <= {
        "grocery",
        "restaurant",
        "fuel",
        "retail",
        "travel",
        "electronics",
        "gift_cards",
        "online_services",
    }

    training = materialize_stages(defs, spec, TRAINING_STAGES, instance)
    assert training.success, [e.description for e in training.get_asset_check_evaluations()]
    mlflow = default_resources()["mlflow"]
    champion = mlflow.version_by_alias(spec.name, CHAMPION)
    inputs = mlflow.load_model(spec.name, champion.version).metadata.get_input_schema().input_types_dict()
    assert {name: inputs[name].name for name in ("merchant", "merchant_share", "channel_risk")} == dict.fromkeys(
        ("merchant", "merchant_share", "channel_risk"), "string"
    ), inputs

    scored = materialize_stages(defs, spec, ["raw_events", "features", "predictions"], instance, [days[-1]])
    assert scored.success
    predictions = DataLake(base_path=str(data_dir / "lake")).read(keys.predictions(spec), [days[-1]])
    assert len(predictions) == len(newest) and predictions["score"].between(0, 1).all()
