"""`ml-platform serve` under load: one-row and 100-row requests at concurrency 1, 16 and 64 for churn (forest),
fraud (torch MLP) and news (pretrained text), then churn one-row requests at concurrency 16 with a promotion in
the middle.

    .venv/bin/python benchmarks/serve.py --json benchmarks/results/serve.json   (make bench-serve)

The benchmark trains its own platform in a temp dir as the demo does (synthetic days landed, raw_events and
features materialized, training gated and promoted; churn trained twice, its second version registered for
the promotion), then starts the real server (`ml-platform serve USE_CASE`, the workers and threads of the
settings) in its own process group. The client runs on the same machine: one thread per concurrent request,
each on its own keep-alive `http.client` connection, sending the same request body back to back for
`--seconds` (requests still in flight then are awaited and counted). Per configuration: throughput
(answers / time to the last answer), p50 and p99 latency, server CPU per request (user + system time of the
server's process group / answers) and the client's own CPU per request (this process's CPU time / answers).
Every answer must be a 200 naming a version; a failed request makes the exit status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from ml_platform_tests.support.polling import poll_until  # noqa: E402
from ml_platform_tests.support.servers import BIN, free_port, kill_process_group, spawn  # noqa: E402

USE_CASES = {"churn": (64, 1_500), "fraud": (60, 1_500), "news": (16, 30)}  # days landed, events per day
START = dt.date(2025, 1, 1)


def train(root: Path) -> None:
    """Every use case trained and promoted; churn's second version (another seed) registered, not promoted."""
    import dagster as dg

    from demo.generators import generators
    from demo.landing import land_days
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.resources.sources import EventSource
    from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages

    specs = {spec.name: spec for spec in load_specs()}
    defs, instance = build_definitions(list(specs.values())), dg.DagsterInstance.ephemeral()
    for name, (count, per_day) in USE_CASES.items():
        land_days(
            EventSource(data_dir=str(root)).landing_dir(specs[name].source),
            generators()[name](START, count, per_day, 3),
        )
        days = [(START + dt.timedelta(days=i)).isoformat() for i in range(count)]
        if not (
            materialize_stages(defs, specs[name], DAILY_STAGES[:2], instance, days).success
            and materialize_stages(defs, specs[name], TRAINING_STAGES, instance).success
        ):
            raise SystemExit(f"training {name} failed")
    materialize_stages(
        defs,
        specs["churn"],
        TRAINING_STAGES,
        instance,
        run_config={"ops": {"churn__model": {"config": {"params": {"random_state": 9}}}}},
    )


def feature_rows(root: Path, name: str, count: int) -> list[dict[str, Any]]:
    from ml_platform.assets import keys
    from ml_platform.definitions import load_specs
    from ml_platform.io.parquet_lake import DataLake

    spec = next(spec for spec in load_specs() if spec.name == name)
    lake = DataLake(base_path=str(root / "lake"))
    days = lake.existing_partitions(keys.features(spec))[-3:]
    return json.loads(lake.read(keys.features(spec), days)[spec.feature_names].head(count).to_json(orient="records"))


class Server:
    def __init__(self, root: Path, name: str, logs: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "ML_PLATFORM_DATA_DIR": str(root), "MLFLOW_LOGGING_LEVEL": "WARNING"}
        self.log = logs / f"serve-{name}.log"
        self.process = spawn(
            [str(BIN / "ml-platform"), "serve", name, "--port", str(self.port), "--refresh-seconds", "1"],
            env,
            self.log,
            REPO_ROOT,
        )
        poll_until(
            self._ready,
            f"ml-platform serve {name} to be ready",
            timeout=180,
            interval=0.5,
            details=lambda: self.log.read_text()[-3000:],
        )

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the server exited: {self.log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("GET", "/ready")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == self.process.pid:
                    times = process.cpu_times()
                    total += times.user + times.system
            except (psutil.Error, OSError):
                continue
        return total

    def stop(self) -> None:
        kill_process_group(self.process)


def run_load(port: int, body: bytes, concurrency: int, seconds: float, during: Any = None) -> dict[str, Any]:
    """`concurrency` keep-alive clients for `seconds`; with `during` (the promotion, returning the version it
    made champion): `during()` after `seconds / 2`, then the load goes on until that version has answered
    for `seconds / 2` (at most 120 s)."""
    latencies: list[float] = []
    versions: list[tuple[float, str]] = []
    failures: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("POST", "/score", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                version = json.loads(payload).get("model_version") if response.status == 200 else None
                outcome = None if version else f"{response.status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                outcome, version = f"{type(error).__name__}: {error}", None
            finished = time.perf_counter()
            with lock:
                if outcome:
                    failures.append(outcome)
                else:
                    latencies.append(finished - started)
                    versions.append((started, version))

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    cpu, started = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    if during is not None:
        time.sleep(seconds / 2)
        new = during()
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            with lock:
                first_new = next((at for at, version in versions if version == new), None)
            if first_new is not None and time.perf_counter() - first_new >= seconds / 2:
                break
            time.sleep(0.1)
    else:
        time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed, client_cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    answered = len(latencies)
    return {
        "requests": answered,
        "failed": len(failures),
        "failures": failures[:5],
        "throughput_rps": answered / elapsed,
        "p50_ms": 1000 * latencies[answered // 2] if answered else None,
        "p99_ms": 1000 * latencies[min(answered - 1, int(answered * 0.99))] if answered else None,
        "client_cpu_ms_per_request": 1000 * client_cpu / max(answered, 1),
        "versions": sorted({version for _, version in versions}),
        "version_sequence": versions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per configuration (default 5)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        root, logs = Path(temp) / "data", Path(temp)
        os.environ["ML_PLATFORM_DATA_DIR"] = str(root)
        t0 = time.perf_counter()
        train(root)
        print(f"trained {', '.join(USE_CASES)} in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in USE_CASES:
            rows = feature_rows(root, name, 100)
            server = Server(root, name, logs)
            try:
                for row_count in (1, 100):
                    body = json.dumps({"rows": rows[:row_count]}).encode()
                    for concurrency in (1, 16, 64):
                        cpu = server.cpu_seconds()
                        result = run_load(server.port, body, concurrency, args.seconds)
                        result["server_cpu_ms_per_request"] = (
                            1000 * (server.cpu_seconds() - cpu) / max(result["requests"], 1)
                        )
                        results.append({"use_case": name, "rows": row_count, "concurrency": concurrency, **result})
                        print(_line(results[-1]), flush=True)
            finally:
                server.stop()
        results.append(promotion_run(root, logs, args.seconds))
        print(_line(results[-1]), flush=True)

    for result in results:
        result.pop("version_sequence", None)
    summary = {"machine": _machine(), "seconds_per_configuration": args.seconds, "results": results}
    print()
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 1 if any(result["failed"] for result in results) else 0


def promotion_run(root: Path, logs: Path, seconds: float) -> dict[str, Any]:
    """churn, one row, concurrency 16: version 2 promoted after `seconds` of load; no request may fail. Reported:
    seconds from the alias moving to the first answer by version 2, and how long version 1 still answered
    after that (the other worker's refresh and load)."""
    server = Server(root, "churn", logs)
    promoted: list[float] = []

    def promote() -> str:
        subprocess.run(
            [str(BIN / "ml-platform"), "promote", "churn", "2", "--reason", "bench-serve"],
            check=True,
            env={**os.environ, "ML_PLATFORM_DATA_DIR": str(root)},
            capture_output=True,
        )
        promoted.append(time.perf_counter())  # the alias moved
        return "2"

    try:
        body = json.dumps({"rows": feature_rows(root, "churn", 1)}).encode()
        cpu = server.cpu_seconds()
        result = run_load(server.port, body, 16, seconds * 2, during=promote)
        result["server_cpu_ms_per_request"] = 1000 * (server.cpu_seconds() - cpu) / max(result["requests"], 1)
    finally:
        server.stop()
    sequence = sorted(result["version_sequence"])
    first_new = next((started for started, version in sequence if version == "2"), None)
    last_old = max((started for started, version in sequence if version == "1"), default=None)
    result["swap_s"] = None if first_new is None else round(first_new - promoted[0], 2)  # alias moved -> first answer
    result["old_version_after_first_new_s"] = (
        None if first_new is None or last_old is None else round(max(0.0, last_old - first_new), 2)
    )
    return {"use_case": "churn", "rows": 1, "concurrency": 16, "promotion": True, **result}


def _line(result: dict[str, Any]) -> str:
    extra = f" versions {result['versions']}" + (f" swap {result.get('swap_s')} s" if result.get("promotion") else "")
    return (
        f"{result['use_case']:6} rows {result['rows']:3} c {result['concurrency']:2}: "
        f"{result['throughput_rps']:7.1f} req/s "
        f"p50 {result['p50_ms'] or 0:8.1f} ms p99 {result['p99_ms'] or 0:8.1f} ms server cpu "
        f"{result['server_cpu_ms_per_request']:6.2f} ms/req client cpu "
        f"{result['client_cpu_ms_per_request']:5.2f} ms/req "
        f"failed {result['failed']}{extra}"
    )


def _table(results: list[dict[str, Any]]) -> str:
    header = (
        "| use case | rows | concurrency | req/s | p50 ms | p99 ms | server CPU ms/req | client CPU ms/req | failed |"
    )
    lines = [header, "|" + "---|" * 9]
    for r in results:
        name = r["use_case"] + (" (promotion midway)" if r.get("promotion") else "")
        lines.append(
            f"| {name} | {r['rows']} | {r['concurrency']} | {r['throughput_rps']:.0f} | {r['p50_ms'] or 0:.1f} | "
            f"{r['p99_ms'] or 0:.1f} | {r['server_cpu_ms_per_request']:.2f} | "
            f"{r['client_cpu_ms_per_request']:.2f} | {r['failed']} |"
        )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    from ml_platform.settings import Settings

    serve = Settings.from_env().serve
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "workers": serve.workers,
        "threads": serve.threads,
        "batch_wait_ms": serve.batch_wait_ms,
        "load_average_at_end": os.getloadavg(),
    }


if __name__ == "__main__":
    sys.exit(main())
