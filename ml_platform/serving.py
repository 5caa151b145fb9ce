"""`ml-platform serve USE_CASE`: the current champion as an HTTP scoring service.

POST /score with `{"rows": [{feature: value, ...}, ...]}` returns `{"model_version": ..., "scores": [...]}`
(a multiclass champion adds each row's `classes` (the most probable) and `probabilities` (per class)).
Rows are checked against the features the champion was trained on (its MLflow signature): a missing
or non-numeric feature is a 400 naming it. The service asks the registry for the champion alias at
most every `refresh_s` seconds and swaps models in place, so a promotion or a rollback is served
without a restart; while no champion exists (or the registry cannot say) it answers 503, never a guess.
GET /health says which version serves; GET /metrics is Prometheus text.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.spec import UseCaseSpec
from ml_platform.steps import class_probabilities

MAX_ROWS = 10_000  # per request: a bigger batch belongs to the daily predictions


class BadRequest(ValueError):
    """The request cannot be scored as sent; the message says what to change."""


@dataclass
class Loaded:
    version: str
    model: Any
    features: list[str]
    strings: set[str]  # features the model reads as text (categories, texts); the others are numbers


class ChampionScorer:
    """The champion of one use case, refreshed from the registry at most every `refresh_s` seconds."""

    def __init__(self, spec: UseCaseSpec, mlflow: MlflowResource, refresh_s: float = 5.0) -> None:
        self.spec, self.mlflow, self.refresh_s = spec, mlflow, refresh_s
        self._loaded: Loaded | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> Loaded | None:
        """The serving champion; None while the registry has none."""
        with self._lock:
            if time.monotonic() - self._checked_at >= self.refresh_s:
                champion = self.mlflow.version_by_alias(self.spec.name, CHAMPION)  # RegistryUnavailable propagates
                self._checked_at = time.monotonic()
                if champion is None:
                    self._loaded = None
                elif self._loaded is None or self._loaded.version != str(champion.version):
                    self._loaded = self._load(str(champion.version))
            return self._loaded

    def _load(self, version: str) -> Loaded:
        model = self.mlflow.load_model(self.spec.name, version)
        schema = model.metadata.get_input_schema()
        features = list(schema.input_names()) if schema is not None else self.spec.feature_names
        strings = {f.name for f in self.spec.expanded_features if f.agg in ("category", "text")}
        return Loaded(version, model, features, strings)

    def score(self, body: Any) -> dict[str, Any]:
        loaded = self.current()
        if loaded is None:
            raise LookupError(f"{self.spec.name}: no model has alias '{CHAMPION}' yet")
        frame = _rows(body, loaded)
        raw = loaded.model.predict(frame)
        if self.spec.label.task == "multiclass":
            return _class_answer(loaded.version, class_probabilities(raw, self.spec.classes), self.spec.classes)
        values = raw.to_numpy() if hasattr(raw, "to_numpy") else raw
        scores = values[:, -1] if getattr(values, "ndim", 1) == 2 else values
        return {"model_version": loaded.version, "scores": [float(score) for score in scores]}


def _class_answer(version: str, probabilities: Any, classes: list[str]) -> dict[str, Any]:
    return {
        "model_version": version,
        "classes": [classes[index] for index in probabilities.argmax(axis=1)],
        "scores": [float(score) for score in probabilities.max(axis=1)],
        "probabilities": [{name: float(p) for name, p in zip(classes, row, strict=True)} for row in probabilities],
    }


def _rows(body: Any, loaded: Loaded) -> pd.DataFrame:
    """The request's rows as the model's input frame; BadRequest naming what is wrong."""
    rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise BadRequest('expected a JSON object {"rows": [{feature: value, ...}, ...]} with at least one row')
    if len(rows) > MAX_ROWS:
        raise BadRequest(f"{len(rows)} rows in one request; at most {MAX_ROWS}")
    missing = sorted({name for row in rows for name in loaded.features if name not in row})
    if missing:
        raise BadRequest(f"missing feature(s) {missing}; the model (version {loaded.version}) reads {loaded.features}")
    frame = pd.DataFrame(rows)[loaded.features]
    for name in loaded.features:
        if name in loaded.strings:
            frame[name] = frame[name].astype("string")
            continue
        converted = pd.to_numeric(frame[name], errors="coerce")
        bad = frame[name][converted.isna() & frame[name].notna()]
        if len(bad):
            raise BadRequest(f"feature '{name}' must be a number, got {bad.iloc[0]!r} (row {int(bad.index[0])})")
        frame[name] = converted.astype("float64")
    return frame


def create_app(scorer: ChampionScorer) -> Any:
    """The Flask app: /score, /health, /metrics."""
    from flask import Flask, jsonify, request
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    from ml_platform.resources.mlflow_resource import RegistryUnavailable

    registry = CollectorRegistry()
    requests = Counter("ml_platform_serving_requests", "Scoring requests by outcome", ["outcome"], registry=registry)
    latency = Histogram("ml_platform_serving_seconds", "Time to score one request", registry=registry)
    version = Gauge("ml_platform_serving_model_version", "Registered version serving", registry=registry)
    app = Flask(f"ml_platform_serving_{scorer.spec.name}")

    @app.post("/score")
    def score() -> Any:
        started = time.perf_counter()
        try:
            result = scorer.score(request.get_json(silent=True))
        except BadRequest as error:
            requests.labels("bad_request").inc()
            return jsonify(error=str(error)), 400
        except (LookupError, RegistryUnavailable) as error:
            requests.labels("unavailable").inc()
            return jsonify(error=str(error)), 503
        requests.labels("ok").inc()
        latency.observe(time.perf_counter() - started)
        version.set(float(result["model_version"]))
        return jsonify(result)

    @app.get("/health")
    def health() -> Any:
        try:
            loaded = scorer.current()
        except RegistryUnavailable as error:
            return jsonify(status="unavailable", error=str(error)), 503
        if loaded is None:
            return jsonify(status="no champion", use_case=scorer.spec.name), 503
        return jsonify(status="ok", use_case=scorer.spec.name, model_version=loaded.version, features=loaded.features)

    @app.get("/metrics")
    def metrics() -> Any:
        return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    return app


def serve(spec: UseCaseSpec, mlflow: MlflowResource, host: str, port: int, refresh_s: float) -> None:
    """Serve until interrupted (a threaded WSGI server; behind gunicorn, use `create_app`)."""
    from werkzeug.serving import make_server

    scorer = ChampionScorer(spec, mlflow, refresh_s)
    scorer.current()  # load the champion before the first request
    server = make_server(host, port, create_app(scorer), threaded=True)
    print(f"serving {spec.name} on http://{host}:{port} (/score, /health, /metrics)", flush=True)
    server.serve_forever()
