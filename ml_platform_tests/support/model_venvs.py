"""Fresh virtualenvs that install only a registered model's own `requirements.txt`, as a consumer without
the platform would (`mlflow models serve`, another team's batch job).

Installed with uv (locked in the platform's venv, as `make install` uses it), which resolves the requirements
as pip does but several times faster: the news model's venv (torch, transformers) took ~80 s with pip on
2 busy cores. uv reads no pip configuration, so it is handed the find-links folders pip is configured with
(this machine keeps torch's CPU wheel in one, which `torch==2.13.0` then resolves to, as with pip). Not
`--compile-bytecode`: that compiles every module of torch and transformers (the text venv: 70 CPU-s, on every
fresh machine such as CI's), while a model needs a fraction of them; its first import compiles and caches those
(~19 s once for the text venv), as `clean_env` lets Python write bytecode there.

One venv per distinct requirements set, kept across test sessions under ~/.cache/ml_platform/model-venvs
(outside the repo; ML_PLATFORM_MODEL_VENVS moves it), keyed by the hash of the requirements and the
Python version: a changed pin builds a new venv, an unchanged one reuses the installed venv. A venv is
built in place under a lock (its scripts name their own path, so it cannot be moved into place) and marked
complete last: a half-built venv left by a killed session is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

UV = str(Path(sys.executable).with_name("uv"))
CACHE = Path(os.environ.get("ML_PLATFORM_MODEL_VENVS", Path.home() / ".cache" / "ml_platform" / "model-venvs"))
COMPLETE = "ml-platform-venv-complete"


def requirement_lines(requirements: Path) -> list[str]:
    """The requirement lines of a model's requirements.txt (comments and blank lines dropped), sorted."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return sorted(line for line in lines if line)


def model_venv(requirements: Path) -> Path:
    """A venv holding exactly what `pip install -r requirements` installs; built once per requirements set."""
    lines = requirement_lines(requirements)
    key = hashlib.sha256("\n".join([sys.version.split()[0], *lines]).encode()).hexdigest()[:16]
    venv = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent session waits for the build instead of racing it
        if not (venv / COMPLETE).exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)  # the .venv's Python
            (venv / "requirements.txt").write_text("\n".join(lines) + "\n")
            install = subprocess.run(
                [UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
                + [option for folder in pip_find_links() for option in ("--find-links", folder)]
                + ["-r", str(venv / "requirements.txt")],
                capture_output=True,
                text=True,
                env=clean_env(venv),
            )
            if install.returncode:
                raise AssertionError(
                    f"uv pip install -r {requirements} failed:\n{install.stdout[-3000:]}{install.stderr[-3000:]}"
                )
            (venv / COMPLETE).write_text("")
    return venv


def pip_find_links() -> list[str]:
    """The find-links folders pip is configured with (its config files and PIP_FIND_LINKS), as `make install`
    reads them."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({folder for value in re.findall(r"find-links='(.*)'", listed) for folder in value.split()})


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment for commands in `venv`: its bin first on PATH, nothing pointing back at the platform, and
    Python free to cache the bytecode of what it imports there."""
    env = {
        key: value
        for key, value in os.environ.items()  # MLflow exports its URIs to os.environ when set in-process
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
        and not key.startswith(("ML_PLATFORM_", "MLFLOW_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env.update(extra)
    return env
