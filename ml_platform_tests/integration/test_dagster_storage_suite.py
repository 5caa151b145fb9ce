"""Dagster's own event-log storage suite passes on both platform storages (issue 25, Build 2).

`TestEventLogStorage` of the pinned Dagster release (dagster_tests/storage_tests/utils/event_log_storage.py
in the dagster 1.13.27 sdist, fetched with pip at test time, checked against its sha256 and cached under
~/.cache/ml_platform, never in the repository) runs with the fixtures Dagster uses for its SQLite storage
and dagster-postgres for its Postgres one (ml_platform_tests/support/dagster_storage_suite.py) over
`PooledSqliteEventLogStorage` as dagster.yaml configures it and `PooledPostgresEventLogStorage` as
deploy/dagster-postgres.yaml does, each in a pytest session of its own writing JUnit XML; the two storages'
sessions run at the same time (the main session only waits on them).

What passing proves, per storage: every test the suite defines ran (150, parametrized); every one
passed, except those Dagster's stock storage skips too, with the same reason: the suite is run again on
the stock storage for exactly the tests the platform's skipped or failed, so a failure also says whether
the stock storage fails it (an environment or Dagster problem) or passes it (the platform's regression).
Runtime: most of it is Dagster's fixture creating a fresh instance (its databases, or on Postgres the event-log
schema) for each of the 150 tests. Alembic's reading of Dagster's migration scripts at each new SQLite database is
done once per session (support/migrations.py), and the SQLite session's instances live in shared memory where
there is some (`sqlite_workdir`). Alone on a quiet 2-core machine about twice as slow as the one these tests were
first timed on: SQLite 135 -> 77 s with shared memory, Postgres ~119 s, both at once 146 -> 120 s.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
import sqlalchemy as sa

from ml_platform_tests.support.postgres import admin_engine, url_text

SUITE_VERSION = "1.13.27"  # the dagster pin in pyproject.toml: the suite must be the installed release's
SUITE_SDIST = f"dagster-{SUITE_VERSION}.tar.gz"
SUITE_SDIST_SHA256 = "e582f530cd16060e50e54ffa7fde1a0a0275e98615900f8d3c575d91fd694db4"
SUITE_FILE = "dagster_tests/storage_tests/utils/event_log_storage.py"
# The suite and its packages' (empty) __init__ files; not utils/__init__.py, which imports the run-storage
# suite and with it Dagster's unpublished `dagster_test` package (utils/ is a namespace package without it).
SUITE_MEMBERS = ("dagster_tests/__init__.py", "dagster_tests/storage_tests/__init__.py", SUITE_FILE)
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ml_platform" / "dagster-storage-suite"
REPO = Path(__file__).resolve().parents[2]
SUITE_MODULE = REPO / "ml_platform_tests" / "support" / "dagster_storage_suite.py"
SESSION_TIMEOUT_S = 480  # under the project's 600 s a test


class Outcome(NamedTuple):
    status: str  # passed, failed, skipped
    message: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive:
        for block in iter(lambda: archive.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist() -> Path:
    """The pinned dagster sdist from the package registry (once; cached), refused unless its sha256 matches."""
    archive = CACHE_DIR / SUITE_SDIST
    if not archive.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as download:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    # the sdist of dagster alone: `:all:` also built pip's build tools from source to read
                    # its metadata (193 s on a cold pip cache, 7.7 s this way; the same file, same sha256)
                    "--no-binary",
                    "dagster",
                    "-d",
                    download,
                    f"dagster=={SUITE_VERSION}",
                ],
                check=True,
                timeout=300,
            )
            os.replace(Path(download) / SUITE_SDIST, archive)
    actual = sha256(archive)
    if actual != SUITE_SDIST_SHA256:
        pytest.fail(
            f"{archive}: sha256 {actual}, expected {SUITE_SDIST_SHA256} (SUITE_SDIST_SHA256 in {Path(__file__).name}); "
            "refusing to run a suite that is not the pinned release's. Delete the file to fetch it again.",
            pytrace=False,
        )
    return archive


def extract_suite(archive: Path) -> Path:
    """SUITE_MEMBERS of the archive under a folder named by its hash: the folder to put on PYTHONPATH."""
    target = CACHE_DIR / f"suite-{SUITE_SDIST_SHA256[:16]}"
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch, tarfile.open(archive) as sdist:
            prefix = f"dagster-{SUITE_VERSION}/"
            sdist.extractall(
                scratch, members=[sdist.getmember(prefix + member) for member in SUITE_MEMBERS], filter="data"
            )
            try:
                os.replace(Path(scratch) / prefix, target)
            except OSError:  # another session extracted it meanwhile
                if not target.exists():
                    raise
    return target


# CPython 3.11's ast.parse is not thread-safe ("AST constructor recursion depth mismatch", gh-106905), and both
# storages' checks read the suite's tests from their own threads.
_AST_PARSE = threading.Lock()


def suite_test_names(suite_root: Path) -> set[str]:
    """The `test_` methods `TestEventLogStorage` defines, read from the suite's source (not pytest's collection)."""
    source = (suite_root / SUITE_FILE).read_text()
    with _AST_PARSE:
        tree = ast.parse(source)
    suite = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "TestEventLogStorage")
    return {node.name for node in suite.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.fixture(scope="module")
def suite_root() -> Path:
    installed = importlib.metadata.version("dagster")
    if installed != SUITE_VERSION:
        pytest.fail(
            f"dagster {installed} is installed but {Path(__file__).name} pins the storage suite of {SUITE_VERSION}: "
            "set SUITE_VERSION and SUITE_SDIST_SHA256 to the new release's sdist",
            pytrace=False,
        )
    return extract_suite(fetch_sdist())


def junit_outcomes(report: Path) -> dict[str, dict[str, Outcome]]:
    """{test class: {test name: outcome}} from a JUnit XML report."""
    outcomes: dict[str, dict[str, Outcome]] = {}
    for case in ET.parse(report).iter("testcase"):
        outcome = Outcome("passed", "")
        for child in case:
            if (
                child.tag == "skipped"
            ):  # its text is where the suite skipped and why: `event_log_storage.py:2428: Skipped`
                outcome = Outcome("skipped", Path((child.text or "").strip()).name or child.get("message", ""))
            elif child.tag in ("failure", "error"):
                outcome = Outcome("failed", f"{child.tag}: {child.get('message', '')[:500]}")
        outcomes.setdefault(case.get("classname", "").rsplit(".", 1)[-1], {})[case.get("name", "")] = outcome
    return outcomes


def run_suite(
    suite_root: Path,
    workdir: Path,
    storage: str,
    test_class: str,
    names: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Outcome]:
    """One pytest session of the suite for `test_class` (all its tests, or `names`); its outcomes by test name."""
    report = workdir / f"{test_class}-{len(names or [])}.xml"
    selection = (
        [f"{SUITE_MODULE}::{test_class}::{name}" for name in names] if names else [f"{SUITE_MODULE}::{test_class}"]
    )
    session_env = {
        **os.environ,
        **(env or {}),
        "ML_PLATFORM_SUITE_STORAGE": storage,
        "PYTHONPATH": os.pathsep.join([str(suite_root), os.environ.get("PYTHONPATH", "")]),
        "DAGSTER_RECORD_DEFENSIVE_CHECKS": "true",  # as Dagster's own test sessions run (dagster_tests/conftest.py)
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "--noconftest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:warnings",
        f"--junitxml={report}",
        *selection,
    ]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=session_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=SESSION_TIMEOUT_S)
    finally:
        with_group_killed(process)
    if process.returncode not in (0, 1) or not report.exists():
        pytest.fail(
            f"the storage suite's session ({test_class}) exited {process.returncode}:\n{output[-4000:]}", pytrace=False
        )
    return junit_outcomes(report).get(test_class, {})


def with_group_killed(process: subprocess.Popen[str]) -> None:
    """End whatever the suite's session left running (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def check_storage(
    suite_root: Path,
    workdir: Path,
    storage: str,
    platform_class: str,
    stock_class: str,
    env: dict[str, str] | None = None,
) -> None:
    platform = run_suite(suite_root, workdir, storage, platform_class, env=env)
    defined = suite_test_names(suite_root)
    missing = sorted(defined - {name.split("[", 1)[0] for name in platform})
    assert not missing and len(platform) >= len(defined), (
        f"{platform_class}: {len(platform)} tests ran, the suite defines {len(defined)}; never ran: {missing}"
    )

    not_passed = sorted(name for name, outcome in platform.items() if outcome.status != "passed")
    stock = run_suite(suite_root, workdir, storage, stock_class, names=not_passed, env=env) if not_passed else {}
    problems = []
    for name in not_passed:
        ours, theirs = platform[name], stock.get(name, Outcome("not run", ""))
        if ours.status == "failed":
            problems.append(f"{name} FAILED: {ours.message} (Dagster's stock storage: {theirs.status})")
        elif theirs != ours:
            problems.append(
                f"{name} skipped ({ours.message}), but Dagster's stock storage: {theirs.status} {theirs.message}"
            )
    assert not problems, f"{platform_class}, Dagster {SUITE_VERSION}'s storage suite:\n" + "\n".join(problems)


def test_a_sdist_not_matching_its_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CACHE_DIR", tmp_path)
    (tmp_path / SUITE_SDIST).write_bytes(b"not Dagster's release")
    with pytest.raises(pytest.fail.Exception, match=f"sha256 .*, expected {SUITE_SDIST_SHA256}"):
        fetch_sdist()


def suite_database(postgres_database: Callable[[], sa.URL]) -> str:
    """A fresh database; its commits skip the WAL flush (a throwaway database: ~30% off the runtime)."""
    url = postgres_database()
    with admin_engine(url).connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{url.database}" SET synchronous_commit = off'))
    return url_text(url)


SHARED_MEMORY = Path("/dev/shm")


@contextlib.contextmanager
def sqlite_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the SQLite session creates its instances: in memory (tmpfs) where there is one with room, since
    Dagster's fixture creates ~30 tables and indexes per test, each its own synced transaction (on disk here the
    session spent a fifth of its time waiting on fsync); otherwise in the session's temporary directory."""
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK) and shutil.disk_usage(SHARED_MEMORY).free > 1 << 30:
        with tempfile.TemporaryDirectory(prefix="sqlite_suite", dir=SHARED_MEMORY) as workdir:
            yield Path(workdir)
    else:
        yield tmp_path_factory.mktemp("sqlite_suite")


@pytest.fixture(scope="module")
def storage_checks(
    request: pytest.FixtureRequest, suite_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[None]]]:
    """Both storages' checks started at once, each a thread waiting on its own pytest sessions (the main
    session only waits): together they take about the time of the longer one. Each test waits for its
    storage's check and raises what it raised; no Postgres server skips (or under CI fails) only that test."""
    with sqlite_workdir(tmp_path_factory) as sqlite_dir, ThreadPoolExecutor(max_workers=2) as pool:
        checks = {
            "sqlite": pool.submit(
                check_storage,
                suite_root,
                sqlite_dir,
                "sqlite",
                "TestPlatformSqlite",
                "TestStockSqlite",
            )
        }
        try:
            database = suite_database(request.getfixturevalue("postgres_database"))
        except (pytest.skip.Exception, pytest.fail.Exception) as unavailable:
            checks["postgres"] = Future()
            checks["postgres"].set_exception(unavailable)
        else:
            checks["postgres"] = pool.submit(
                check_storage,
                suite_root,
                tmp_path_factory.mktemp("postgres_suite"),
                "postgres",
                "TestPlatformPostgres",
                "TestStockPostgres",
                env={"ML_PLATFORM_SUITE_POSTGRES_URL": database},
            )
        yield checks


def test_sqlite_storage_passes_dagsters_suite(storage_checks: dict[str, Future[None]]) -> None:
    storage_checks["sqlite"].result()


def test_postgres_storage_passes_dagsters_suite(storage_checks: dict[str, Future[None]]) -> None:
    storage_checks["postgres"].result()
