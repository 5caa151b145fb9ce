"""Real `dagster-webserver` + `dagster-daemon` processes for end-to-end tests and benchmarks.

`dagster_servers(home, env)` starts both against the repo's workspace.yaml with
an isolated DAGSTER_HOME (a copy of the repo's dagster.yaml), each in its own
session/process group so that the code servers and run workers they spawn
share that group. On exit the whole groups get SIGTERM, then SIGKILL, so no
code server or run worker outlives the context. Talking to the webserver: graphql.py
(`servers.client()` is Dagster's own `DagsterGraphQLClient`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
from dagster_graphql import DagsterGraphQLClient

from ml_platform_tests.support import graphql as gql
from ml_platform_tests.support.graphql import wait_for_code_location, wait_for_daemons
from ml_platform_tests.support.polling import poll_until

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = REPO_ROOT / ".venv" / "bin"

# Variables that would make the servers read or write outside the test's sandbox, or start automation.
_SCRUBBED_ENV = (
    "DAGSTER_HOME",
    "ML_PLATFORM_DATA_DIR",
    "ML_PLATFORM_AUTOMATION",
    "ML_PLATFORM_LAKE",
    "ML_PLATFORM_SPECS_DIR",
    "ML_PLATFORM_ENV",
    "ML_PLATFORM_ALERT_WEBHOOK",  # tests and benchmarks never page anyone
    "ML_PLATFORM_SOURCE_DSN",
    "MLFLOW_TRACKING_URI",
)


class ServerError(RuntimeError):
    """A server did not come up, or a GraphQL call returned an error."""


# --------------------------------------------------------------------------- processes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def prepare_dagster_home(path: str | Path, dagster_yaml: str | Path = REPO_ROOT / "dagster.yaml") -> Path:
    """Create `path` with a copy of the repo's dagster.yaml; returns the absolute path."""
    home = Path(path).resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dagster_yaml, home / "dagster.yaml")
    return home


def server_env(dagster_home: str | Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment minus anything that points elsewhere, plus DAGSTER_HOME and `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED_ENV}
    env["DAGSTER_HOME"] = str(Path(dagster_home).resolve())
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = SHOWN_WARNINGS  # in the logs, for `assert_no_platform_deprecations`
    env.update(extra or {})
    return env


# Python hides DeprecationWarning outside __main__; the servers (and the code servers and run workers they start)
# print these once per place instead.
SHOWN_WARNINGS = "default::DeprecationWarning,default::FutureWarning"  # the two the pytest process fails on
# A warning printed for a line of the platform's own code: "/…/ml_platform/assets/daily.py:155: DeprecationWarning: …"
PLATFORM_DEPRECATION = re.compile(r"\S*/ml_platform/[\w/]+\.py:\d+: \w*(?:DeprecationWarning|FutureWarning): .*")


def assert_no_platform_deprecations(log_dir: Path) -> None:
    """The pytest process fails on a deprecation the platform's code reaches (pyproject.toml); this does the same
    for the servers, the code servers and the run workers, whose warnings land in their logs."""
    found = sorted(
        {
            match.group(0)[:300]
            for log in log_dir.glob("*.log")
            for match in PLATFORM_DEPRECATION.finditer(log.read_text(errors="replace"))
        }
    )
    assert not found, "the platform's code reached deprecated APIs in the servers:\n" + "\n".join(found)


@contextlib.contextmanager
def open_instance(dagster_home: str | Path) -> Iterator[Any]:
    """A `DagsterInstance` on `dagster_home` (dagster.yaml resolves `env: DAGSTER_HOME` while loading)."""
    import dagster as dg

    home = str(Path(dagster_home).resolve())
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home
    try:
        instance = dg.DagsterInstance.from_config(home)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    try:
        yield instance
    finally:
        instance.dispose()


def daemon_command(workspace: str, backfill_loop_s: int | None = None) -> list[str]:
    """`dagster-daemon run`, or with `backfill_loop_s` the same daemon whose backfill loop sleeps that long instead
    of Dagster's 30 s (support/backfill_daemon.py): for tests that wait on a backfill, never for benchmarks."""
    if backfill_loop_s is None:
        return [str(BIN / "dagster-daemon"), "run", "-w", workspace]
    script = Path(__file__).with_name("backfill_daemon.py")
    return [str(BIN / "python"), str(script), str(backfill_loop_s), "run", "-w", workspace]


def spawn(args: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - closed by the child's exit; the parent's copy right below
    try:
        return subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own session and process group: code servers and run workers join it
        )
    finally:
        log.close()


def _group_members(pgid: int) -> list[psutil.Process]:
    return _members_of([pgid])


def _members_of(pgids: Sequence[int]) -> list[psutil.Process]:
    """The live processes of any of these process groups (one pass over the process table)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) in pgids:
                members.append(process)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return members


def kill_process_group(process: subprocess.Popen, term_timeout: float = 15.0) -> None:
    """SIGTERM the process's whole group, wait for every member, then SIGKILL what is left."""
    kill_process_groups([process], term_timeout)


def kill_process_groups(processes: Sequence[subprocess.Popen], term_timeout: float = 15.0) -> None:
    """`kill_process_group` for several groups at once: all get SIGTERM together and shut down side by side
    (a webserver and a daemon each take seconds to stop their code servers), then SIGKILL for what is left."""
    pgids = [process.pid for process in processes]  # start_new_session=True: a leader's pid is its group id
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)

    def stopped() -> bool:
        for process in processes:
            process.poll()
        return all(process.returncode is not None for process in processes) and not _members_of(pgids)

    deadline = time.monotonic() + term_timeout
    while time.monotonic() < deadline:
        if stopped():
            return
        time.sleep(0.1)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _members_of(pgids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class DagsterServers:
    """Handles on a running webserver + daemon pair."""

    url: str
    dagster_home: Path
    env: dict[str, str]
    log_dir: Path
    webserver: subprocess.Popen
    daemon: subprocess.Popen | None
    daemon_args: list[str]
    started_at: float = field(default_factory=time.time)
    retired: list[subprocess.Popen] = field(default_factory=list)  # daemons replaced by a restart

    @property
    def process_groups(self) -> tuple[int, ...]:
        processes = (self.webserver, self.daemon, *self.retired)
        return tuple(process.pid for process in processes if process is not None)

    def processes(self) -> list[psutil.Process]:
        """Every live process of both groups (servers, code servers, run workers)."""
        return [p for pgid in self.process_groups for p in _group_members(pgid)]

    def instance(self) -> contextlib.AbstractContextManager[Any]:
        return open_instance(self.dagster_home)

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {name} (last {lines} lines) ---\n{_tail(self.log_dir / f'{name}.log', lines)}"
            for name in ("webserver", "daemon")
        )

    def kill_daemon_alone_and_restart(self, repo_root: Path = REPO_ROOT) -> int:
        """SIGKILL the daemon process only (what it launched lives on, as after an OOM kill of the daemon
        container's main process), then start a new daemon; returns the killed pid."""
        assert self.daemon is not None
        killed = self.daemon.pid
        os.kill(killed, signal.SIGKILL)
        self.daemon.wait(timeout=30)
        self.retired.append(self.daemon)  # its process group still holds the old code servers / run workers
        self.daemon = spawn(
            self.daemon_args,
            self.env,
            self.log_dir / "daemon.log",
            repo_root,
        )
        return killed

    def client(self) -> DagsterGraphQLClient:
        """Dagster's GraphQL client for this webserver (submit a job, a run's status, reload, terminate)."""
        return gql.client(self.url)

    def assert_alive(self) -> None:
        for name, process in (("webserver", self.webserver), ("daemon", self.daemon)):
            if process is not None and process.poll() is not None:
                raise ServerError(f"dagster {name} exited with {process.returncode}\n{self.logs()}")


def wait_until(
    predicate: Callable[[], T],
    servers: DagsterServers,
    what: str,
    context: Callable[[], str] | None = None,
    timeout: float = 240.0,
    poll: float = 0.5,
) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what`, with `context()` and the logs."""
    return poll_until(
        predicate,
        what,
        timeout=timeout,
        interval=poll,
        alive=servers.assert_alive,
        details=lambda: f"{context() if context else ''}\n{servers.logs(80)}",
    )


@contextlib.contextmanager
def dagster_servers(
    dagster_home: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    log_dir: str | Path | None = None,
    startup_timeout: float = 180.0,
    daemon: bool = True,
    wait_for_daemon: bool = False,
    repo_root: Path = REPO_ROOT,
    backfill_loop_s: int | None = None,
) -> Iterator[DagsterServers]:
    """Run `dagster-webserver` and `dagster-daemon run` on workspace.yaml until the block exits.

    `dagster_home` must already hold a dagster.yaml (see `prepare_dagster_home`); `env` is added
    to a scrubbed copy of this process's environment (see `server_env`). Yields once the webserver
    answers /server_info and the code location is LOADED (and, with `wait_for_daemon`, once every
    required daemon has a healthy heartbeat), with the UI's first-visit dialog marked seen
    (`gql.mark_first_visit_seen`). `daemon=False` starts the webserver alone: backfills
    launched then stay REQUESTED, which is enough to inspect what a launch targets. `backfill_loop_s`: see
    `daemon_command`.
    """
    home = Path(dagster_home).resolve()
    if not (home / "dagster.yaml").exists():
        raise ServerError(f"{home} has no dagster.yaml; call prepare_dagster_home first")
    # Not $DAGSTER_HOME/logs: Dagster's telemetry uploader owns (and empties) that directory.
    logs = Path(log_dir).resolve() if log_dir else home.parent / f"{home.name}-server-logs"
    logs.mkdir(parents=True, exist_ok=True)
    full_env = server_env(home, env)
    workspace = str(repo_root / "workspace.yaml")
    daemon_args = daemon_command(workspace, backfill_loop_s)
    # Create the SQLite schemas once, here: webserver and daemon starting on an empty DAGSTER_HOME
    # race to create them ("table alembic_version already exists").
    with open_instance(home):
        pass

    started: list[subprocess.Popen] = []
    servers: DagsterServers | None = None
    try:
        daemon_process = None
        if daemon:
            daemon_process = spawn(daemon_args, full_env, logs / "daemon.log", repo_root)
            started.append(daemon_process)
        webserver = url = None
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            webserver = spawn(
                [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
                full_env,
                logs / "webserver.log",
                repo_root,
            )
            started.append(webserver)
            if wait_for_server_info(url, webserver, timeout=startup_timeout):
                break
            kill_process_group(webserver)
        else:
            raise ServerError(f"dagster-webserver did not start\n{_tail(logs / 'webserver.log')}")
        servers = DagsterServers(
            url=url,
            dagster_home=home,
            env=full_env,
            log_dir=logs,
            webserver=webserver,
            daemon=daemon_process,
            daemon_args=daemon_args,
        )
        deadline = time.monotonic() + startup_timeout
        wait_for_code_location(url, timeout=max(1.0, deadline - time.monotonic()), alive=servers.assert_alive)
        gql.mark_first_visit_seen(url)
        if daemon and wait_for_daemon:
            wait_for_daemons(url, timeout=max(1.0, deadline - time.monotonic()), alive=servers.assert_alive)
        servers.assert_alive()
        yield servers
    finally:
        if servers is not None and servers.daemon is not None and servers.daemon not in started:
            started.extend([*servers.retired, servers.daemon])  # a restarted daemon and the groups it left
        kill_process_groups(started)
    assert_no_platform_deprecations(logs)  # reached only when the block ended without an error


def wait_for_server_info(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """True once the webserver answers /server_info, False if its process exited first (its port was taken)."""

    def check() -> str | None:
        if process.poll() is not None:
            return "exited"
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return "up"
        return None

    return poll_until(check, f"{url}/server_info to answer", timeout=timeout, interval=0.25) == "up"


# --------------------------------------------------------------------------- memory


def process_peak_rss_mb() -> float:
    """This process's own peak RSS since it started its program (VmHWM). Not `ru_maxrss`: Linux keeps a
    forked parent's RSS in it across exec, so a child of a 3 GB parent reports 3 GB before it does anything."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


class RssSampler:
    """Samples RSS of every process in the given process groups on a background thread.

    `peak_total_mb`: the largest sum over all processes at one sample; `peak_by_role_mb`: the
    largest RSS of one process per role (webserver, daemon, code_server, run_worker, other);
    `cpu_seconds_by_role`: CPU time (user + system) each role used while sampled, as last seen
    (a process that exits between samples loses at most one interval).
    """

    def __init__(self, process_groups: Iterable[int], interval: float = 0.2) -> None:
        self.process_groups = set(process_groups)
        self.interval = interval
        self.peak_total_mb = 0.0
        self.peak_by_role_mb: dict[str, float] = {}
        self.samples = 0
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @staticmethod
    def role(process: psutil.Process) -> str:
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            return "other"
        # DefaultRunLauncher: the code server spawns each run worker with multiprocessing (spawn_main);
        # `dagster api execute_run` is the CLI form of the same worker.
        if "spawn_main" in command or "execute_run" in command or "execute_step" in command:
            return "run_worker"
        if " grpc" in command or "code-server" in command or "code_server" in command:
            return "code_server"
        if "dagster-webserver" in command:
            return "webserver"
        if "dagster-daemon" in command or "backfill_daemon" in command:
            return "daemon"
        return "other"

    def sample(self) -> None:
        total = 0.0
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) not in self.process_groups:
                    continue
                with process.oneshot():
                    rss = process.memory_info().rss / 2**20
                    times = process.cpu_times()
                role = self.role(process)
            except (ProcessLookupError, psutil.Error, OSError):
                continue
            total += rss
            self.peak_by_role_mb[role] = max(self.peak_by_role_mb.get(role, 0.0), rss)
            cpu = times.user + times.system
            # Processes already running at the first sample count from then; later ones from their start.
            self._cpu_start.setdefault(process.pid, cpu if self.samples == 0 else 0.0)
            self._cpu_last[process.pid] = (role, cpu)
        self.peak_total_mb = max(self.peak_total_mb, total)
        self.samples += 1

    @property
    def cpu_seconds_by_role(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for pid, (role, cpu) in self._cpu_last.items():
            used[role] = used.get(role, 0.0) + cpu - self._cpu_start.get(pid, 0.0)
        return used

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
