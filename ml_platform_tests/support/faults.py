"""Real servers to break on purpose: an MLflow tracking server, and a loopback proxy in front of it
that answers chosen API paths with an error while forwarding everything else."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from demo.ui import MLFLOW_SERVER_ENV
from ml_platform_tests.support.polling import poll_until
from ml_platform_tests.support.servers import BIN, _tail, free_port, kill_process_group, spawn


@contextlib.contextmanager
def mlflow_server(store: Path, log_dir: Path, auth_config: Path | None = None) -> Iterator[str]:
    """`mlflow server` on a free loopback port over the SQLite store `store` (the platform's local store);
    with `auth_config`, MLflow's basic-auth app with that ini file (what the Helm chart runs). Without MLflow's
    job runner, as `make ui` and the chart run it."""
    port = free_port()
    auth = ["--app-name", "basic-auth"] if auth_config else []
    process = spawn(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{store}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *auth,
        ],
        env={
            "PATH": str(BIN) + ":/usr/bin:/bin",
            **MLFLOW_SERVER_ENV,
            **(
                {
                    "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
                    "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),  # CSRF protection of the auth app's forms
                }
                if auth_config
                else {}
            ),
        },
        log_path=log_dir / "mlflow-server.log",
        cwd=log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"mlflow server on {url} exited\n{_tail(log_dir / 'mlflow-server.log')}")
            return _healthy(url)

        poll_until(
            up, f"mlflow server on {url} to come up", timeout=90, details=lambda: _tail(log_dir / "mlflow-server.log")
        )
        yield url
    finally:
        kill_process_group(process)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class FaultProxy:
    """Forwards to `target`; requests whose path contains one of the `failing` fragments get a 503."""

    def __init__(self, target: str) -> None:
        self.failing: tuple[str, ...] = ()
        self.refused: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                if any(fragment in self.path for fragment in proxy.failing):
                    proxy.refused.append(self.path)
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected outage"}')
                    return
                length = int(self.headers.get("Content-Length") or 0)
                reply = requests.request(
                    self.command,
                    target + self.path,
                    data=self.rfile.read(length) if length else None,
                    headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")},
                    timeout=60,
                )
                self.send_response(reply.status_code)
                for name, value in reply.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
