"""The news use case end to end on real Reuters articles: a pretrained sentence encoder classifies each
day's articles into topics with no training, is registered and promoted through the same gates as every
model, and a daily report is written from its predictions."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from demo.generators.news import TOPICS
from ml_platform.assets import keys
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import materialize_stages
from ml_platform.spec import load_spec
from ml_platform.steps import PREDICTED_CLASS
from ml_platform_tests.support.use_cases import ARTICLES_PER_DAY, NewsPlatform


@pytest.fixture(scope="module")
def news(news_platform: NewsPlatform) -> NewsPlatform:
    """The session's news platform (test_serving_batching scores its champion too)."""
    return news_platform


def test_the_pretrained_encoder_is_measured_registered_and_promoted_like_any_model(news: NewsPlatform) -> None:
    assert news.daily.success and news.training.success, "the news pipeline failed"
    summary = news.lake.read_json(keys.model(news.spec))
    # zero-shot on real Reuters topics, measured on the labelled holdout days (chance with 8 topics: ~0.12,
    # always answering the most common topic: ~0.5)
    assert summary["metrics"]["accuracy"] >= 0.6, summary["metrics"]
    assert 0.0 < summary["metrics"]["macro_f1"] <= 1.0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(news.root))
        champion = news.mlflow.version_by_alias("news", CHAMPION)
        assert champion is not None and str(champion.version) == summary["version"]
        run = news.mlflow.client().get_run(summary["run_id"])
    assert run.data.params["model_type"] == "pretrained_text"
    assert run.data.metrics["holdout_accuracy"] == pytest.approx(summary["metrics"]["accuracy"])
    plots = news.training.asset_materializations_for_node("news__model")[0].metadata
    assert base64.b64decode(plots["plot_confusion_matrix"].value.split("base64,")[1].split(")")[0])[:4] == b"\x89PNG"
    # the training set keeps each article's topic as its label and says how many of each
    labels = news.training.asset_materializations_for_node("news__training_set")[0].metadata["label_counts"].value
    assert set(labels) <= set(TOPICS) and sum(labels.values()) > 0


def test_every_article_gets_a_topic_and_its_probability(news: NewsPlatform) -> None:
    assert news.scored.success
    for day in news.days[-3:]:
        predictions = news.lake.read(keys.predictions(news.spec), [day])
        raw = news.lake.read(keys.raw_events(news.spec), [day])
        assert sorted(predictions["article_id"]) == sorted(raw["article_id"])  # untagged articles included
        assert set(predictions[PREDICTED_CLASS]) <= set(TOPICS)
        assert predictions["score"].between(1 / len(TOPICS), 1.0).all()  # the top class of a softmax over 8
        tagged = predictions.merge(raw[["article_id", "topic"]], on="article_id").dropna(subset=["topic"])
        assert (tagged[PREDICTED_CLASS] == tagged["topic"]).mean() >= 0.5


def test_the_same_articles_score_the_same_through_the_registered_model(news: NewsPlatform) -> None:
    """What the registry serves is what was evaluated: reloading the champion gives the stored scores."""
    day = news.days[-1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(news.root))
        champion = news.mlflow.version_by_alias("news", CHAMPION)
        model = news.mlflow.load_model("news", champion.version)
    features = news.lake.read(keys.features(news.spec), [day])
    stored = news.lake.read(keys.predictions(news.spec), [day]).set_index("article_id")
    answer = model.predict(features[["article_text"]])
    assert list(answer.columns) == list(TOPICS)
    np.testing.assert_allclose(
        answer.max(axis=1).to_numpy(), stored.loc[features["article_id"], "score"].to_numpy(), rtol=1e-6
    )


def test_the_champion_is_served_online_with_a_topic_per_text(news: NewsPlatform) -> None:
    from ml_platform.serving import ChampionScorer, create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(news.root))
        scorer = ChampionScorer(news.spec, news.mlflow)
        scorer.refresh()  # what each server worker does when it starts
        client = create_app(scorer).test_client()
        answer = client.post(
            "/score",
            json={
                "rows": [
                    {"article_text": "opec ministers agree to cut crude oil output to lift prices"},
                    {"article_text": "xyz corp quarterly net profit rose to mln dlrs shr cts vs cts revenues up"},
                ]
            },
        )
        missing = client.post("/score", json={"rows": [{"headline": "no text"}]})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["classes"] == ["crude", "earn"] and body["model_version"] == "1"
    assert body["scores"][0] == pytest.approx(max(body["probabilities"][0].values()))
    assert set(body["probabilities"][0]) == set(TOPICS)
    assert missing.status_code == 400 and "missing feature(s) ['article_text']" in missing.get_json()["error"]


def test_the_daily_report_summarises_the_day_against_the_previous_days(news: NewsPlatform) -> None:
    day = news.days[-1]
    report_key = keys.report(news.spec)
    text = (news.root / "lake" / Path(*report_key.path) / f"{day}.md").read_text()
    predictions = news.lake.read(keys.predictions(news.spec), [day])
    assert text.startswith(f"# news: {day}")
    assert f"{len(predictions)} item(s) classified by model v" in text
    counts = predictions[PREDICTED_CLASS].value_counts()
    for topic in TOPICS:  # one table row per topic with its count today
        assert f"| {topic} | {int(counts.get(topic, 0))} |" in text
    assert "## Least confident" in text and "## Clearest examples per class" in text
    least = predictions.nsmallest(1, "score").iloc[0]
    assert f"| {least['article_id']} | {least[PREDICTED_CLASS]} | {least['score']:.2f} |" in text
    # the previous seven days' predictions are the comparison: here the two days scored before it
    assert (
        f"compared with {2 * ARTICLES_PER_DAY} item(s) of the previous 7 days ({news.days[-3]}..{news.days[-2]})"
        in text
    )
    # the same Markdown is the partition's metadata, which the UI renders on the asset page
    [record] = news.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=report_key, asset_partitions=[day]), limit=1
    ).records
    assert record.asset_materialization.metadata["report"].value == text


def test_a_report_of_a_day_without_predictions_fails_naming_it(news: NewsPlatform) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_DATA_DIR", str(news.root))
        result = materialize_stages(news.defs, news.spec, ["report"], news.instance, [news.days[0]])
    assert not result.success
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "inputs_complete"]
    assert not evaluation.passed and evaluation.partition == news.days[0]
    assert f"news/predictions {news.days[0]} is not materialized; no report is written for it" in evaluation.description
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert f"news/report: 1 partition(s) failed ({news.days[0]})" in str(failure.event_specific_data.error)


def test_spec_errors_name_the_field_for_text_models(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "ml_platform" / "use_cases" / "news.yaml"
    text = source.read_text()
    MODEL_BLOCK = text[text.index("model:") : text.index("training:")]
    cases = {
        "unknown description": (
            "      ship:",
            "      shipping:",
            "model.params.descriptions: ['shipping'] are not classes",
        ),
        "numeric model for topics": (
            MODEL_BLOCK,
            "model: {type: sklearn_random_forest}\n\n",
            "event_class labels are classified by model.type pretrained_text",
        ),
        "two inputs for a text model": (
            "  - {name: article_text, agg: text, column: text}",
            "  - {name: article_text, agg: text, column: text}\n  - {name: hour, agg: hour}",
            "a pretrained_text model reads exactly one feature, with agg: text",
        ),
        "a class label without classes": (
            "    allowed_values: [earn, acq, crude, trade, money-fx, interest, ship, grain]\n",
            "",
            "an event_class label needs a string column whose allowed_values are the classes",
        ),
    }
    for name, (old, new, expected) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text.replace(old, new, 1))
        with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            load_spec(path)
    assert os.environ.get("HF_HUB_OFFLINE") in (None, "1")  # the encoder never asks the hub for anything
