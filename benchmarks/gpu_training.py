"""Fraud training on a GPU through the platform's own path, against the same training on the CPU.

1. Lands the fraud demo's synthetic days (`python -m demo generate --use-case fraud`) and
   materializes fraud/raw_events + fraud/features over them in-process (ephemeral instance).
2. Copies the data dir, then trains twice through Dagster's `materialize` of fraud/training_set ->
   fraud/model (gated) -> fraud/champion, each on its own copy with its own SQLite MLflow store:
   once as the spec says (`device: auto`: cuda when available) and once with the model asset's run
   config forcing `params: {device: cpu}`. `TorchMLPTrainer.fit` is wrapped (in this process) to time
   the fit (CUDA synchronized) and to read where the module's parameters are when it returns.
3. Loads each registered version back in a child process that sees no GPU (`CUDA_VISIBLE_DEVICES=`),
   through `MlflowResource.load_model` as predictions and serving do, scores the holdout rows and
   recomputes F1 at the version's decision threshold.
4. Determinism and warm timings: a child process fits the trainer twice on the training split (the
   first fit pays the device's start-up, the second is warm) and compares the two runs bit for bit:
   on the default device without and with `CUBLAS_WORKSPACE_CONFIG=:4096:8`, and on the CPU.

Prints a table and writes JSON:

    .venv/bin/python benchmarks/gpu_training.py --days 60 --events-per-day 5000 \\
        --json benchmarks/results/gpu_training.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
USE_CASE = "fraud"
END = "2025-03-31"  # fixed days: the same data wherever it runs


def environment() -> dict[str, Any]:
    import dagster
    import mlflow
    import numpy
    import pandas
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "dagster": dagster.__version__,
        "mlflow": mlflow.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "cuda_available": torch.cuda.is_available(),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # no driver: the info without it
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    return info


def instrument_fit(fits: list[dict[str, Any]]) -> None:
    """Record every TorchMLPTrainer.fit in this process: wall time, where the module is, epochs, warnings."""
    import torch

    from ml_platform.models.torch_trainers import TorchMLPTrainer

    original = TorchMLPTrainer.fit

    def fit(self, features, labels, days):
        cuda = torch.cuda.is_available() and self.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            result = original(self, features, labels, days)
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
        parameter = next(self.module.parameters())
        best = min(range(len(self.history)), key=self.history.__getitem__)
        fits.append(
            {
                "trainer_device": self.device,
                "parameters_device": str(parameter.device),
                "buffers_device": str(self.module.mean.device),
                "fit_s": round(elapsed, 3),
                "rows": len(features),
                "epochs_run": len(self.history),
                "max_epochs": self.epochs,
                "best_epoch": best + 1,
                "best_validation_loss": self.history[best],
                "decision_threshold": self.threshold,
                "cuda_peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
                "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught}),
            }
        )
        return result

    TorchMLPTrainer.fit = fit


def step_seconds(instance: Any, run_id: str, step_key: str) -> float | None:
    """STEP_START -> STEP_SUCCESS of one step, from the run's event log."""
    events = [
        (e.timestamp, e.dagster_event.event_type_value)
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and e.dagster_event.step_key == step_key
    ]
    starts = [t for t, kind in events if kind == "STEP_START"]
    ends = [t for t, kind in events if kind == "STEP_SUCCESS"]
    return round(max(ends) - min(starts), 3) if starts and ends else None


def train(data_dir: Path, label: str, params: dict[str, Any], fits: list[dict[str, Any]]) -> dict[str, Any]:
    """fraud/training_set -> model -> champion through `materialize`, in `data_dir`; what it did."""
    import dagster as dg

    from ml_platform.assets import keys
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.resources import default_resources
    from ml_platform.runner import TRAINING_STAGES, materialize_stages

    os.environ["ML_PLATFORM_DATA_DIR"] = str(data_dir)
    spec = next(s for s in load_specs() if s.name == USE_CASE)
    run_config = {"ops": {f"{USE_CASE}__model": {"config": {"params": params}}}} if params else None
    before = len(fits)
    start = time.perf_counter()
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_stages(
        build_definitions(load_specs()), spec, TRAINING_STAGES, instance, run_config=run_config, log_level="ERROR"
    )
    wall = time.perf_counter() - start
    out: dict[str, Any] = {
        "label": label,
        "run_config_params": params,
        "success": result.success,
        "run_wall_s": round(wall, 3),
        "model_step_s": step_seconds(instance, result.run_id, f"{USE_CASE}__model"),
        "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
        "fits": fits[before:],
        "step_failures": [
            e.step_failure_data.error.message.strip()[:2000] for e in result.all_events if e.is_step_failure
        ],
    }
    lake = DataLake(base_path=str(data_dir / "lake"))
    if lake.has_json(keys.model(spec)):
        summary = lake.read_json(keys.model(spec))
        out.update(version=summary["version"], metrics=summary["metrics"])
        mlflow = default_resources()["mlflow"]
        run = mlflow.client().get_run(summary["run_id"])
        out["mlflow_params"] = dict(run.data.params)
        out["mlflow_metrics"] = dict(run.data.metrics)
        champion = mlflow.version_by_alias(USE_CASE, "champion")
        out["champion_version"] = str(champion.version) if champion else None
    return out


def child(mode: str, data_dir: Path, version: str | None, device: str) -> dict[str, Any]:
    """Runs in a fresh process: `serve` (no GPU visible) or `determinism` (two fits on `device`: cold, then warm)."""
    from ml_platform.assets import keys
    from ml_platform.definitions import load_specs
    from ml_platform.io.parquet_lake import DataLake

    os.environ["ML_PLATFORM_DATA_DIR"] = str(data_dir)
    spec = next(s for s in load_specs() if s.name == USE_CASE)
    training_set = DataLake(base_path=str(data_dir / "lake")).read(keys.training_set(spec), None)
    train, holdout = (training_set[training_set["split"] == split] for split in ("train", "holdout"))
    if mode == "serve":
        return serve_on_cpu(spec, holdout, version)
    return refit_twice(spec, train, holdout, device)


def serve_on_cpu(spec: Any, holdout: Any, version: str | None) -> dict[str, Any]:
    """The registered version loaded and scored where no GPU is visible, against its logged holdout F1."""
    import numpy as np
    import torch

    from ml_platform.models.metrics import classification_metrics
    from ml_platform.resources import default_resources

    mlflow = default_resources()["mlflow"]
    registered = mlflow.client().get_model_version(USE_CASE, version)
    threshold = float(registered.tags["decision_threshold"])
    start = time.perf_counter()
    model = mlflow.load_model(USE_CASE, version)
    load_s = time.perf_counter() - start
    module = mlflow.configure().pytorch.load_model(f"models:/{USE_CASE}/{version}")
    start = time.perf_counter()
    scores = np.asarray(model.predict(holdout[spec.feature_names].astype("float64")), dtype="float64").ravel()
    score_s = time.perf_counter() - start
    metrics = classification_metrics(holdout["label"].to_numpy(), scores, threshold)
    logged = mlflow.client().get_run(registered.run_id).data.metrics
    return {
        "cuda_available": torch.cuda.is_available(),
        "version": version,
        "load_s": round(load_s, 3),
        "module_device": str(next(module.parameters()).device),
        "rows_scored": len(scores),
        "score_s": round(score_s, 3),
        "decision_threshold": threshold,
        "holdout_f1_recomputed": metrics["f1"],
        "holdout_f1_logged": logged.get("holdout_f1"),
        "f1_matches_logged": abs(metrics["f1"] - logged.get("holdout_f1", float("nan"))) < 1e-9,
    }


def refit_twice(spec: Any, train: Any, holdout: Any, device: str) -> dict[str, Any]:
    """Two fits on `device` in one process (cold, then warm): timings, and whether they agree bit for bit."""
    import numpy as np
    import torch

    from ml_platform.models.torch_trainers import TorchMLPTrainer

    params = {"random_state": spec.training.seed, **spec.model.params, "device": device}
    runs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            start = time.perf_counter()
            trainer = TorchMLPTrainer(**params).fit(train[spec.feature_names], train["label"], train["day"])
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            runs.append((trainer.history, trainer.predict(holdout[spec.feature_names]), elapsed, trainer.device))
    (history_a, scores_a, fit_a, device), (history_b, scores_b, fit_b, _) = runs
    return {
        "device": device,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "fit_s": [round(fit_a, 3), round(fit_b, 3)],
        "epochs_run": [len(history_a), len(history_b)],
        "histories_identical": history_a == history_b,
        "holdout_scores_identical": bool(np.array_equal(scores_a, scores_b)),
        "holdout_scores_max_abs_diff": float(np.max(np.abs(scores_a - scores_b)))
        if len(scores_a) == len(scores_b)
        else None,
        "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught}),
    }


def run_child(
    mode: str,
    data_dir: Path,
    version: str | None = None,
    env: dict[str, str | None] | None = None,
    device: str = "auto",
) -> dict:
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    command = [sys.executable, __file__, "--child", mode, "--data-dir", str(data_dir), "--device", device]
    command += ["--version", version] if version else []
    completed = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=600)
    if completed.returncode != 0:
        return {"error": completed.stderr[-3000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--events-per-day", type=int, default=5_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-determinism", action="store_true", help="no repeated fits in child processes")
    parser.add_argument(
        "--order",
        default="auto,cpu",
        choices=["auto,cpu", "cpu,auto"],
        help="which training runs first in this process (the first pays the imports and start-up)",
    )
    parser.add_argument("--child", choices=["serve", "determinism"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--version", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="auto", help=argparse.SUPPRESS)
    return parser.parse_args()


def land_and_build_features(days_count: int, events_per_day: int, data_dir: Path, result: dict[str, Any]) -> None:
    """The demo's fraud data landed into `data_dir`, and its raw_events and features materialized (timed)."""
    import dagster as dg

    from demo.cli import main as demo
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.runner import DAILY_STAGES, materialize_stages

    os.environ["ML_PLATFORM_DATA_DIR"] = str(data_dir)
    start = time.perf_counter()
    if (
        demo(
            [
                "generate",
                "--use-case",
                USE_CASE,
                "--days",
                str(days_count),
                "--events-per-day",
                str(events_per_day),
                "--end",
                END,
            ]
        )
        != 0
    ):
        raise SystemExit("landing failed")
    result["landing_s"] = round(time.perf_counter() - start, 3)
    spec = next(s for s in load_specs() if s.name == USE_CASE)
    days = [(dt.date.fromisoformat(END) - dt.timedelta(days=i)).isoformat() for i in reversed(range(days_count))]
    start = time.perf_counter()
    daily = materialize_stages(
        build_definitions(load_specs()), spec, DAILY_STAGES[:2], dg.DagsterInstance.ephemeral(), days, log_level="ERROR"
    )
    result["raw_events_features_s"] = round(time.perf_counter() - start, 3)
    if not daily.success:
        raise SystemExit("raw_events/features failed")


def main() -> int:
    args = parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.child:
        print(json.dumps(child(args.child, args.data_dir, args.version, args.device)))
        return 0

    started = time.perf_counter()
    result: dict[str, Any] = {
        "days": args.days,
        "events_per_day": args.events_per_day,
        "end": END,
        "environment": environment(),
    }
    work = Path(tempfile.mkdtemp(prefix="gpu-training-"))
    try:
        auto, cpu = work / "auto", work / "cpu"
        land_and_build_features(args.days, args.events_per_day, auto, result)
        shutil.copytree(auto, cpu)

        fits: list[dict[str, Any]] = []
        instrument_fit(fits)
        trainings = {"auto": (auto, {}), "cpu": (cpu, {"device": "cpu"})}
        result["order"] = args.order
        result["runs"] = [
            train(trainings[label][0], label, trainings[label][1], fits) for label in args.order.split(",")
        ]
        result["serve_on_cpu"] = [
            run_child("serve", trainings[run["label"]][0], run["version"], {"CUDA_VISIBLE_DEVICES": ""})
            for run in result["runs"]
            if run.get("version")
        ]
        if not args.skip_determinism:
            result["determinism"] = [
                run_child("determinism", auto, env={"CUBLAS_WORKSPACE_CONFIG": None}),
                run_child("determinism", auto, env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}),
                run_child("determinism", auto, device="cpu"),
            ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - started, 3)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if all(run["success"] for run in result["runs"]) else 1


def print_table(result: dict[str, Any]) -> None:
    env = result["environment"]
    print(
        f"\nfraud, {result['days']} days x {result['events_per_day']} events/day; {env.get('gpu', 'no GPU')}; "
        f"torch {env['torch']} (CUDA {env['torch_cuda']}), {env['torch_threads']} CPU threads"
    )
    print(
        f"landing {result['landing_s']} s, raw_events + features {result['raw_events_features_s']} s; "
        f"training runs in this order: {result['order']}"
    )
    rows = [("", *(run["label"] for run in result["runs"]))]
    fit = [run["fits"][0] if run["fits"] else {} for run in result["runs"]]
    metric_names = sorted({m for run in result["runs"] for m in run.get("metrics", {})})
    rows += [
        ("run success", *(str(run["success"]) for run in result["runs"])),
        ("trainer.device", *(f.get("trainer_device", "-") for f in fit)),
        ("parameters after fit", *(f.get("parameters_device", "-") for f in fit)),
        ("training rows", *(str(f.get("rows", "-")) for f in fit)),
        ("fit wall (s)", *(str(f.get("fit_s", "-")) for f in fit)),
        (
            "epochs run / max (best)",
            *(f"{f.get('epochs_run')} / {f.get('max_epochs')} ({f.get('best_epoch')})" for f in fit),
        ),
        ("model step (s)", *(str(run["model_step_s"]) for run in result["runs"])),
        ("training run wall (s)", *(str(run["run_wall_s"]) for run in result["runs"])),
        ("decision threshold", *(f"{f.get('decision_threshold', float('nan')):.4f}" for f in fit)),
        *(
            (f"holdout {m}", *(f"{run.get('metrics', {}).get(m, float('nan')):.4f}" for run in result["runs"]))
            for m in metric_names
        ),
        (
            "gates",
            *(
                ", ".join(f"{name} {'passed' if ok else 'FAILED'}" for name, ok in run["checks"].items()) or "-"
                for run in result["runs"]
            ),
        ),
        (
            "registered version / champion",
            *(f"{run.get('version')} / {run.get('champion_version')}" for run in result["runs"]),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for run in result["runs"]:
        for failure in run["step_failures"]:
            print(f"{run['label']}: step failure: {failure.splitlines()[0]}")
        for f in run["fits"]:
            for warning in f["warnings"]:
                print(f"{run['label']}: warning in fit: {warning}")
    for served in result.get("serve_on_cpu", []):
        print(f"served on CPU: {served}")
    for check in result.get("determinism", []):
        print(f"determinism: {check}")
    print(f"total {result['total_s']} s")


if __name__ == "__main__":
    sys.exit(main())
