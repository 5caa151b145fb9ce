"""`ml-platform serve USE_CASE`: the current champion as an HTTP scoring service, run by gunicorn.

POST /score with `{"rows": [{feature: value, ...}, ...]}` returns `{"model_version": ..., "scores": [...]}`
(a multiclass champion adds each row's `classes` (the most probable) and `probabilities` (per class)).
Rows are checked against the features the champion was trained on (its MLflow signature): a missing
or non-numeric feature is a 400 naming it. GET /health: the process answers (liveness); GET /ready: 200
once a champion is loaded, 503 before or while the registry cannot say (readiness); GET /metrics is
Prometheus text, summed over the workers.

Each gunicorn worker (`workers` processes of `threads` threads) loads the champion when it starts and
asks the registry for the champion alias every `refresh_s` seconds on a background thread; a new version
is loaded beside the serving one and swapped in one assignment, so a promotion or rollback under load
loses no request and each response names the version that scored it. While no champion exists (or the
registry cannot say) /score answers 503, never a guess.

Micro-batching: a forest's `predict_proba` costs about as much for 16 rows as for one (a fixed overhead
per call), so a worker's concurrent requests are scored in one call: the batcher takes what is queued,
waits at most `batch_wait_ms` for requests already being parsed, and scores up to `max_batch_rows` rows.
Only model types whose rows are scored independently of each other batch (`BATCH_INVARIANT_TYPES`):
ml_platform_tests/integration/test_serving_batching.py proves each shipped type's served scores
byte-identical to scoring its rows one by one.
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource, RegistryUnavailable
from ml_platform.settings import ServeSettings
from ml_platform.spec import UseCaseSpec
from ml_platform.steps import class_probabilities

MAX_ROWS = 10_000  # per request: a bigger batch belongs to the daily predictions
# Each row's score is computed alone: every tree of the forest reads one row, and the trees' probabilities
# are added in tree order whatever the batch. Torch's matrix products and the text encoder's padding to the
# longest text change a row's last bits with its batch (measured: up to 1.2e-7 for fraud's MLP), so those
# types score each request alone.
BATCH_INVARIANT_TYPES = frozenset({"sklearn_random_forest"})


class BadRequest(ValueError):
    """The request cannot be scored as sent; the message says what to change."""


class NotReady(LookupError):
    """No champion to score with: none promoted yet, or the registry cannot say which."""


@dataclass(frozen=True)
class Loaded:
    version: str
    model: Any
    features: list[str]
    strings: set[str]  # features the model reads as text (categories, texts); the others are numbers
    batchable: bool


@dataclass(frozen=True)
class _State:
    loaded: Loaded | None
    error: str | None  # why there is no champion to serve


class ChampionScorer:
    """The champion of one use case, asked of the registry at most every `refresh_s` seconds."""

    def __init__(
        self, spec: UseCaseSpec, mlflow: MlflowResource, refresh_s: float = 5.0, batcher: Batcher | None = None
    ) -> None:
        self.spec, self.mlflow, self.refresh_s, self.batcher = spec, mlflow, refresh_s, batcher
        self._state = _State(None, "not loaded yet")
        self._refresher: threading.Thread | None = None

    def refresh(self) -> Loaded | None:
        """Ask the registry for the champion and swap it in (loaded beside the serving one) if it changed."""
        try:
            champion = self.mlflow.version_by_alias(self.spec.name, CHAMPION)
            if champion is None:
                self._state = _State(None, f"{self.spec.name}: no model has alias '{CHAMPION}' yet")
            else:
                serving = self._state.loaded
                fresh = (
                    serving
                    if serving and serving.version == str(champion.version)
                    else self._load(str(champion.version))
                )
                self._state = _State(fresh, None)
        except RegistryUnavailable as error:
            self._state = _State(None, str(error))
        return self._state.loaded

    def start_refreshing(self) -> None:
        """Load the champion now, then follow the alias on a daemon thread (one per worker process)."""
        self.refresh()

        def follow() -> None:
            while True:
                time.sleep(self.refresh_s)
                self.refresh()

        self._refresher = threading.Thread(target=follow, name="champion-refresh", daemon=True)
        self._refresher.start()

    def current(self) -> Loaded:
        state = self._state
        if state.loaded is None:
            raise NotReady(state.error)
        return state.loaded

    def _load(self, version: str) -> Loaded:
        model = self.mlflow.load_model(self.spec.name, version)
        schema = model.metadata.get_input_schema()
        features = list(schema.input_names()) if schema is not None else self.spec.feature_names
        strings = {f.name for f in self.spec.expanded_features if f.agg in ("category", "text")}
        return Loaded(version, model, features, strings, self.spec.model.type in BATCH_INVARIANT_TYPES)

    def score(self, body: Any) -> dict[str, Any]:
        with self.batcher.arriving() if self.batcher else contextlib.nullcontext():
            loaded = self.current()  # the version read here scores the request and is named in the answer
            frame = _rows(body, loaded)
        if loaded.batchable and self.batcher is not None:
            raw = self.batcher.predict(loaded, frame)
        else:
            raw = loaded.model.predict(frame)
        return self.answer(loaded.version, raw)

    def answer(self, version: str, raw: Any) -> dict[str, Any]:
        if self.spec.label.task == "multiclass":
            return _class_answer(version, class_probabilities(raw, self.spec.classes), self.spec.classes)
        values = raw.to_numpy() if hasattr(raw, "to_numpy") else np.asarray(raw)
        scores = values[:, -1] if values.ndim == 2 else values
        return {"model_version": version, "scores": [float(score) for score in scores]}


@dataclass
class _Pending:
    loaded: Loaded
    frame: pd.DataFrame
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """Scores the concurrent requests of one process in one predict call per model version.

    One thread predicts; requests queue their validated frames and wait. It takes what is queued, and while
    other requests are still being parsed (`arriving`) waits for them at most `max_wait_s`, so an idle
    server adds no latency and a busy one amortizes the per-call cost over up to `max_rows` rows."""

    def __init__(self, max_wait_s: float, max_rows: int) -> None:
        self.max_wait_s, self.max_rows = max_wait_s, max_rows
        self.largest_batch = 0  # requests in the largest predict call so far (tests, /metrics)
        self._queue: collections.deque[_Pending] = collections.deque()
        self._arriving = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="micro-batcher", daemon=True).start()

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Marks a request whose rows are being parsed: the batcher may wait for it."""
        with self._changed:
            self._arriving += 1
        try:
            yield
        finally:
            with self._changed:
                self._arriving -= 1
                self._changed.notify_all()

    def predict(self, loaded: Loaded, frame: pd.DataFrame) -> Any:
        """`loaded.model.predict(frame)`, computed together with other requests' rows."""
        pending = _Pending(loaded, frame)
        with self._changed:
            self._queue.append(pending)
            self._changed.notify_all()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _take(self) -> list[_Pending]:
        with self._changed:
            while not self._queue:
                self._changed.wait()
            deadline = time.monotonic() + self.max_wait_s
            while self._arriving and sum(len(p.frame) for p in self._queue) < self.max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            batch = [self._queue.popleft()]
            rows = len(batch[0].frame)
            while (
                self._queue
                and self._queue[0].loaded is batch[0].loaded
                and rows + len(self._queue[0].frame) <= self.max_rows
            ):
                rows += len(self._queue[0].frame)
                batch.append(self._queue.popleft())
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                frame = _concat([pending.frame for pending in batch])
                raw = batch[0].loaded.model.predict(frame)
                start = 0
                for pending in batch:
                    end = start + len(pending.frame)
                    pending.result = raw.iloc[start:end] if isinstance(raw, pd.DataFrame) else raw[start:end]
                    start = end
            except Exception as error:
                for pending in batch:
                    pending.error = error
            for pending in batch:
                pending.done.set()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one under the other; numbers-only frames through numpy (pd.concat costs more than scoring)."""
    if len(frames) == 1:
        return frames[0]
    if all((frame.dtypes == "float64").all() for frame in frames):
        return pd.DataFrame(np.concatenate([frame.to_numpy() for frame in frames]), columns=frames[0].columns)
    return pd.concat(frames, ignore_index=True)


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
    if not loaded.strings:  # all numbers: one array (a tenth of the per-column conversion below)
        with contextlib.suppress(TypeError, ValueError):  # something is not a number: the conversion below names it
            values = np.array([[row[name] for name in loaded.features] for row in rows], dtype="float64")
            return pd.DataFrame(values, columns=loaded.features)
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
    """The Flask app: /score, /health, /ready, /metrics (summed over the processes of PROMETHEUS_MULTIPROC_DIR)."""
    from flask import Flask, jsonify, request
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
        multiprocess,
    )

    registry = CollectorRegistry()
    requests = Counter("ml_platform_serving_requests", "Scoring requests by outcome", ["outcome"], registry=registry)
    latency = Histogram("ml_platform_serving_seconds", "Time to score one request", registry=registry)
    version = Gauge(
        "ml_platform_serving_model_version",
        "Registered version serving",
        registry=registry,
        multiprocess_mode="livemostrecent",
    )
    app = Flask(f"ml_platform_serving_{scorer.spec.name}")

    @app.post("/score")
    def score() -> Any:
        started = time.perf_counter()
        try:
            result = scorer.score(request.get_json(silent=True))
        except BadRequest as error:
            requests.labels("bad_request").inc()
            return jsonify(error=str(error)), 400
        except NotReady as error:
            requests.labels("unavailable").inc()
            return jsonify(error=str(error)), 503
        requests.labels("ok").inc()
        latency.observe(time.perf_counter() - started)
        version.set(float(result["model_version"]))
        return jsonify(result)

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="alive", use_case=scorer.spec.name, pid=os.getpid())

    @app.get("/ready")
    def ready() -> Any:
        try:
            loaded = scorer.current()
        except NotReady as error:
            return jsonify(status="not ready", use_case=scorer.spec.name, error=str(error)), 503
        return jsonify(status="ok", use_case=scorer.spec.name, model_version=loaded.version, features=loaded.features)

    @app.get("/metrics")
    def metrics() -> Any:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            collected = CollectorRegistry()
            multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]  # unannotated in prometheus
            return generate_latest(collected), 200, {"Content-Type": CONTENT_TYPE_LATEST}
        return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    return app


def worker_app(spec: UseCaseSpec, mlflow: MlflowResource, refresh_s: float, config: ServeSettings) -> Any:
    """One worker's app: its own batcher and scorer, the champion loaded before the worker accepts a request."""
    batcher = Batcher(config.batch_wait_ms / 1000, config.max_batch_rows)
    scorer = ChampionScorer(spec, mlflow, refresh_s, batcher)
    scorer.start_refreshing()
    return create_app(scorer)


def serve(
    spec: UseCaseSpec, mlflow: MlflowResource, host: str, port: int, refresh_s: float, config: ServeSettings
) -> None:
    """Serve with gunicorn until SIGTERM (graceful: stop accepting, finish in-flight requests, exit 0)."""
    from gunicorn.app.base import BaseApplication

    # Worker processes write their metrics here and /metrics sums them; set before prometheus_client is imported.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix=f"ml-platform-serve-{spec.name}-"))

    def child_exit(_server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated in prometheus

    def when_ready(_server: Any) -> None:
        print(
            f"serving {spec.name} on http://{host}:{port} (/score, /health, /ready, /metrics) with "
            f"{config.workers} worker(s) x {config.threads} thread(s)",
            flush=True,
        )

    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": config.workers,
        "threads": config.threads,
        "worker_class": "gthread",
        "graceful_timeout": 30,
        "timeout": 120,
        "keepalive": 5,
        "control_socket_disable": True,  # no shared ~/.gunicorn socket
        "child_exit": child_exit,
        "when_ready": when_ready,
    }

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Any]:
            return worker_app(spec, mlflow, refresh_s, config)

    Server().run()
