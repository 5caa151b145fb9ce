"""Drafting a spec from a year of 1M-row days (`ml-platform new-use-case --from-data`): time and peak RSS.

    .venv/bin/python benchmarks/draft_spec.py --days 365 --rows-per-day 1000000 \\
        --json benchmarks/results/draft_spec.json

Lands `--days` day files of `--rows-per-day` events once (Parquet and CSV, `--formats`; `--data DIR` keeps
them for the next run, which reuses them), then drafts the spec from them in a fresh process per format,
timing `draft_spec` alone (imports excluded; wall and CPU time, with the 1-minute load average: on a shared
machine the wall time is the CPU time plus the wait for a core) and reading the process's peak RSS (VmHWM,
imports included).
The same draft over the first `--short-days` files shows whether memory is flat: reading a year must not
take more memory than reading a month. For the year, "read" is the floor: every file read whole with
pyarrow and dropped, nothing computed. Each draft is checked: the event id found (unique across every day),
the closed set written, the category that first appears late left open, the worst null day within its
limit; a wrong draft exits 1.

The events: a string event id (`YYYYMMDD-NNNNNNN`), a customer (the entity), a timestamp, an event type
(5 values, every day), a channel whose third value appears only in the last quarter of the days, an amount
null except on purchases, an integer item count with 1-5% blanks (a different share each day) and a 0/1 label.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
FIRST_DAY = dt.date(2024, 1, 1)
EVENT_TYPES = ["login", "session", "purchase", "support_ticket", "plan_change"]
SEED = 3


def land(directory: Path, days: int, rows: int, formats: list[str]) -> None:
    """`days` day files per format under `directory/<format>`; files already there are kept. One pool of
    random rows is drawn once and each day is that pool turned by a random offset, with its own event ids,
    timestamps and share of blank item counts (drawing a year of 1M-row days afresh takes far longer than
    drafting from them)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    for file_format in formats:
        (directory / file_format).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    kind = rng.choice(len(EVENT_TYPES), rows, p=[0.45, 0.35, 0.12, 0.05, 0.03])
    pool = {
        "customer_id": rng.integers(100_000, 400_000, rows),
        "event_type": kind,
        "channel": rng.integers(0, 3, rows),
        "amount": np.where(kind == EVENT_TYPES.index("purchase"), rng.lognormal(3.0, 0.6, rows).round(2), np.nan),
        "items": rng.integers(1, 6, rows),
        "cancelled": (rng.random(rows) < 0.02).astype(np.int64),
    }
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(rows)), pa.string()), 7, "0")
    seconds = np.sort(rng.integers(0, 86_400, rows)).astype("timedelta64[s]")
    started = time.perf_counter()
    for offset in range(days):
        day = FIRST_DAY + dt.timedelta(days=offset)
        paths = {f: directory / f / f"{day}.{f}" for f in formats}
        if all(path.exists() for path in paths.values()):
            continue
        turn = int(rng.integers(0, rows))
        column = {name: np.roll(values, turn) for name, values in pool.items()}
        channels = ["web", "app"] + (["partner"] if offset >= days * 3 // 4 else [])  # a value of the last quarter
        table = pa.table(
            {
                "event_id": pc.binary_join_element_wise(day.strftime("%Y%m%d-"), numbers, ""),
                "customer_id": column["customer_id"],
                "event_time": pa.array(np.datetime64(day, "s") + seconds).cast(pa.timestamp("s", "UTC")),
                "event_type": strings(column["event_type"], EVENT_TYPES),
                "channel": strings(column["channel"] % len(channels), channels),
                "amount": pa.array(column["amount"], from_pandas=True),
                "items": pa.array(column["items"], mask=rng.random(rows) < rng.uniform(0.01, 0.05)),
                "cancelled": column["cancelled"],
            }
        )
        if "parquet" in paths:
            pq.write_table(table, paths["parquet"])
        if "csv" in paths:
            csv.write_csv(table, paths["csv"])
        if offset % 30 == 29:
            print(f"  landed {offset + 1} of {days} days ({time.perf_counter() - started:.0f} s)", flush=True)


def strings(indices: Any, values: list[str]) -> Any:
    """Text column from value indices (through a dictionary: numpy's unicode arrays convert slowly)."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.int32()), pa.array(values)).cast(pa.string())


def first_days(directory: Path, count: int) -> Path:
    """A directory of the first `count` day files (hard links: no copy)."""
    target = directory.parent / f"{directory.name}_first_{count}"
    target.mkdir(exist_ok=True)
    for path in sorted(directory.iterdir())[:count]:
        if not (target / path.name).exists():
            os.link(path, target / path.name)
    return target


def child(directory: Path, data_dir: Path) -> None:
    """One draft in this fresh process: its time, this process's peak RSS and what it drafted."""
    import yaml

    from ml_platform.spec_draft import draft_spec
    from ml_platform_tests.support.servers import process_peak_rss_mb

    started, cpu = time.perf_counter(), time.process_time()
    text = draft_spec(
        "bench", data_dir, directory, label="cancelled", timestamp="event_time", entity="customer_id", progress=False
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    spec = yaml.safe_load(text)
    columns = {column["name"]: column for column in spec["columns"]}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "load_average_1m": os.getloadavg()[0],
                "peak_rss_mb": process_peak_rss_mb(),
                "event_id": spec.get("event_id_column"),
                "event_type_allowed": columns["event_type"].get("allowed_values"),
                "channel_allowed": columns["channel"].get("allowed_values"),
                "items_max_null_fraction": columns["items"].get("max_null_fraction"),
                "items_dtype": columns["items"]["dtype"],
            }
        )
    )


def read_floor(directory: Path) -> None:
    """Every file read whole with pyarrow and dropped, in this fresh process: the least a read of all the
    data costs (the draft reads Parquet's footers and a few of its columns, CSV whole)."""
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    from ml_platform.history_scan import CSV_BLOCK_BYTES
    from ml_platform_tests.support.servers import process_peak_rss_mb

    started, cpu = time.perf_counter(), time.process_time()
    for path in sorted(directory.iterdir()):
        if path.suffix == ".csv":
            csv.read_csv(path, read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES))
        else:
            pq.read_table(path)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
                "load_average_1m": os.getloadavg()[0],
                "peak_rss_mb": process_peak_rss_mb(),
            }
        )
    )


def measure(directory: Path, data_dir: Path, floor: bool = False) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(directory), "--data", str(data_dir), *(["--floor"] if floor else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"drafting from {directory} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def problems(result: dict[str, Any], file_format: str) -> list[str]:
    """What the draft got wrong (the worst day's item blanks are at most 5%)."""
    found = []
    if result["event_id"] != "event_id":
        found.append(f"event id {result['event_id']}, expected event_id")
    if result["event_type_allowed"] != sorted(EVENT_TYPES):
        found.append(f"event_type allowed_values {result['event_type_allowed']}")
    if result["channel_allowed"] is not None:
        found.append(f"channel closed as {result['channel_allowed']} though 'partner' appears late")
    if not 0.05 <= (result["items_max_null_fraction"] or 0) <= 0.08:
        found.append(f"items max_null_fraction {result['items_max_null_fraction']}, expected 5-8%")
    if result["items_dtype"] != ("int64" if file_format == "csv" else "float64"):
        found.append(f"items dtype {result['items_dtype']}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows-per-day", type=int, default=1_000_000)
    parser.add_argument("--short-days", type=int, default=30, help="the month drafted to compare memory (default 30)")
    parser.add_argument("--formats", nargs="+", choices=["parquet", "csv"], default=["parquet", "csv"])
    parser.add_argument(
        "--data", type=Path, default=None, help="where the day files are landed and kept (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        read_floor(args.child) if args.floor else child(args.child, args.data)
        return 0
    if min(args.days, args.rows_per_day, args.short_days) < 1:
        parser.error("--days, --rows-per-day and --short-days must be positive")

    data = args.data or Path(tempfile.mkdtemp(prefix="ml-platform-draft-"))
    try:
        rows, failures = run(data, args)
    finally:
        if args.data is None:
            shutil.rmtree(data)
    print("drafts as expected" if not failures else "WRONG DRAFTS:\n  " + "\n  ".join(failures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "days": args.days,
                    "rows_per_day": args.rows_per_day,
                    "results": rows,
                    "drafts_as_expected": not failures,
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                    },
                    "commit": subprocess.run(
                        ["git", "rev-parse", "--short", "HEAD"],
                        capture_output=True,
                        text=True,
                        cwd=REPO_ROOT,
                        check=False,
                    ).stdout.strip(),
                    "date": dt.date.today().isoformat(),
                },
                indent=2,
            )
        )
    return 0 if not failures else 1


def run(data: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Land the days (unless there), then draft from a month and from the whole history per format."""
    lake = data / f"{args.days}x{args.rows_per_day}"
    print(f"landing {args.days} days x {args.rows_per_day:,} rows ({', '.join(args.formats)}) in {lake}", flush=True)
    land(lake, args.days, args.rows_per_day, args.formats)
    rows, failures = [], []
    for file_format in args.formats:
        for days, directory in (
            (min(args.short_days, args.days), first_days(lake / file_format, args.short_days)),
            (args.days, lake / file_format),
        ):
            result = measure(directory, data)
            wrong = problems(result, file_format) if days == args.days else []
            failures += [f"{file_format} {days} d: {problem}" for problem in wrong]
            size = sum(path.stat().st_size for path in directory.iterdir()) / 2**30
            if days == args.days:
                result["floor"] = measure(directory, data, floor=True)
            rows.append({"format": file_format, "days": days, "rows": days * args.rows_per_day, "gib": size, **result})
            for what, measured in (("draft", result), ("read", result.get("floor"))):
                if measured:
                    print(
                        f"  {file_format:<8} {days:>4} d  {size:5.1f} GiB  {what:<5} {measured['seconds']:6.1f} s "
                        f"(CPU {measured['cpu_seconds']:5.1f} s, load {measured['load_average_1m']:4.1f})  "
                        f"{days * args.rows_per_day / measured['seconds'] / 1e6:5.1f} M rows/s  "
                        f"peak RSS {measured['peak_rss_mb']:5.0f} MB",
                        flush=True,
                    )
    return rows, failures


if __name__ == "__main__":
    sys.exit(main())
