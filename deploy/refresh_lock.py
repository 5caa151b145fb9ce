"""Re-resolve the hash-locked dependency sets from pyproject.toml: `make lock`.

Four locks, each holding what it adds to the ones before it, so an image installs only what it needs:
requirements.lock (the project's dependencies, its `image` extra and the build backend: every image,
scikit-learn use cases), requirements-torch.lock (the `torch` extra), requirements-text.lock (the `text`
extra) and requirements-test.lock (the `test` extra, which includes the others: `make install`).

Every pin carries the SHA-256 of every file pip may pick for it on CPython 3.11 linux x86_64 (the
compatible wheels, or the sdist when there is no wheel), read from every index pip uses here and, for
torch, from the PyTorch CPU index the CPU image installs it from. `pip install --require-hashes` then
refuses any other file. An index that cannot be reached is named in the output and the lock headers.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
PYPI = "https://pypi.org/simple"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # Dockerfile installs torch's CPU build from here
# Locked to one build (the local version label): PyPI's torch wheel is the CUDA build, which pulls the
# NVIDIA libraries; the GPU image installs that build from its own index instead (Dockerfile.gpu).
BUILDS = {"torch": "cpu"}
SUPPORTED = frozenset(sys_tags())  # this interpreter's tags: CPython 3.11, glibc 2.36 as the CPU image's base
# (lock file, the extras resolved with the project, what it holds); each adds to the ones above it.
LOCKS = (
    (
        "requirements.lock",
        "image",
        "Runtime dependencies of every image (scikit-learn use cases) and of `make install`",
    ),
    ("requirements-torch.lock", "image,torch", "What the `torch` extra (model.type torch_mlp, torch_birnn) adds"),
    ("requirements-text.lock", "image,text", "What the `text` extra (model.type pretrained_text) adds"),
    ("requirements-test.lock", "image,test", "What the test suite adds (`make install`)"),
)
# pip and uv, installed first (hash-checked) by the pip a fresh venv or base image brings: older pips
# refuse locked requirements with extras (gql[requests]) in --require-hashes mode, and `make install` installs
# the other locks with uv (hash-checked as strictly, ~10x faster than pip on a fresh venv).
PIP_LOCK = (
    "requirements-pip.lock",
    "pip and uv, installed before the other locks (older pips mishandle extras with hashes; make install uses uv)",
)
INSTALLERS = ("pip", "uv")
HEADER = """\
# {what}.
# Fully pinned and hashed (transitive included), resolved for CPython 3.11 on linux/x86_64 from
# pyproject.toml; install with `pip install --require-hashes`. Do not edit by hand: `make lock`
# regenerates every lock. Hashes read from: {sources}.{unreachable}
"""


def resolve(extras: str, build_requires: list[str], constraints: list[str]) -> dict[str, str]:
    """Every distribution pip would install for the project with `extras` into an empty environment."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                f".[{extras}]",
                *build_requires,
                *[arg for path in constraints for arg in ("-c", path)],
            ],
            cwd=ROOT,
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    pins = {}
    for item in installs:
        name = canonicalize_name(item["metadata"]["name"])
        if name != "ml-platform":
            public = Version(item["metadata"]["version"]).public
            # torch: its locked build whatever pip found here (2.13.0+cpu, never PyPI's CUDA 2.13.0): uv refuses
            # a hash for ==2.13.0 on a +cpu file; the GPU image drops this entry (Dockerfile.gpu).
            pins[name] = f"{public}+{BUILDS[name]}" if name in BUILDS else public
    return pins


def pip_sources() -> list[str]:
    """The indexes (URLs) and find-links folders (paths) pip is configured with here, PyPI first."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    sources = [PYPI]
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        kind = key.rsplit(".", 1)[-1]
        if kind in ("index-url", "extra-index-url", "find-links"):
            for item in value.strip("'\"").split():
                source = str(Path(item.removeprefix("file://"))) if kind == "find-links" else item
                sources += [source] if source not in sources else []
    return sources


def fetch(url: str) -> tuple[str, str] | None:
    """(body, content type) of a project's page on an index; None when the project is not on it."""
    if url.startswith("file://"):  # a local index: a folder per project holding index.html
        page = Path(url.removeprefix("file://")) / "index.html"
        return (page.read_text(), "text/html") if page.is_file() else None
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read().decode(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def files_on(source: str, name: str) -> dict[str, str]:
    """filename -> sha256 of `name`'s files on one index or find-links folder."""
    if not re.match(r"[a-z]+://", source):  # a find-links folder
        folder = Path(source)
        return {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.iterdir()
            if path.is_file() and distribution_of(path.name)[0] == name
        }
    page = fetch(f"{source.rstrip('/')}/{name}/")
    if page is None:
        return {}
    body, content_type = page
    if content_type.endswith("json"):
        return {
            item["filename"]: item["hashes"]["sha256"]
            for item in json.loads(body)["files"]
            if "sha256" in item["hashes"] and not item.get("yanked")
        }
    return {
        html.unescape(filename): digest
        for digest, filename in re.findall(r'href="[^"#]*#sha256=([0-9a-f]{64})"[^>]*>([^<]+)</a>', body)
    }


def distribution_of(filename: str) -> tuple[str, str, bool]:
    """(canonical name, version, compatible wheel) of a wheel or sdist file name; ("", "", False) if neither."""
    try:
        if filename.endswith(".whl"):
            name, version, _, tags = parse_wheel_filename(filename)
            return name, str(version), bool(tags & SUPPORTED)
        name, version = parse_sdist_filename(filename)
        return name, str(version), False
    except ValueError:
        return "", "", False


def hashes(name: str, version: str, sources: list[str], pages: dict[tuple[str, str], dict[str, str]]) -> list[str]:
    """The sha256 of every file pip may pick for name==version (of its locked build): the compatible wheels,
    else the sdists."""
    wheels, sdists = set(), set()
    for source in sources:
        for filename, digest in pages.get((source, name), {}).items():
            found, found_version, compatible = distribution_of(filename)
            if found != name or found_version not in SpecifierSet(f"=={version}"):
                continue
            if compatible:
                wheels.add(digest)
            elif not filename.endswith(".whl"):
                sdists.add(digest)
    chosen = sorted(wheels or sdists)
    if not chosen:
        raise SystemExit(f"{name}=={version}: no wheel for CPython 3.11 linux x86_64 nor sdist on {sources}")
    return chosen


def main() -> None:
    """Resolve each lock's extras, check no pin moves between them, hash every pin and write the locks.

    Extra arguments are pip constraint files without hashes (e.g. today's pins, to add a dependency
    without moving the others); with none, everything moves to the newest versions pyproject.toml allows."""
    if sys.version_info[:2] != (3, 11) or sys.platform != "linux":
        raise SystemExit("run `make lock` with the project's CPython 3.11 on linux x86_64: the hashes are for it")
    build_requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    resolved = [(path, what, resolve(extras, build_requires, sys.argv[1:])) for path, extras, what in LOCKS]
    pinned: dict[str, str] = {}
    per_lock = []
    for path, what, pins in resolved:
        moved = {
            name: (pinned[name], version) for name, version in pins.items() if pinned.get(name, version) != version
        }
        if moved:
            raise SystemExit(f"{path} moves pins of the locks before it {moved}: pin them in pyproject.toml")
        per_lock.append((path, what, {name: version for name, version in pins.items() if name not in pinned}))
        pinned.update(pins)

    installers = {name: metadata.version(name) for name in INSTALLERS}  # the pip that resolved the locks, its uv
    per_lock.insert(0, (*PIP_LOCK, installers))
    pinned.update(installers)
    sources = pip_sources()
    wanted = [(source, name) for name in pinned for source in sources]
    wanted += [(TORCH_CPU_INDEX, "torch")] if "torch" in pinned else []
    pages: dict[tuple[str, str], dict[str, str]] = {}
    unreachable: set[str] = set()

    def read(key: tuple[str, str]) -> None:
        try:
            pages[key] = files_on(*key)
        except (urllib.error.URLError, OSError) as error:
            print(f"{key[0]} ({key[1]}): unreachable: {error}", file=sys.stderr)
            unreachable.add(key[0])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(read, wanted))
    every_source = [*sources, TORCH_CPU_INDEX]
    for path, what, pins in per_lock:
        lines = []
        for name, version in sorted(pins.items()):
            digests = hashes(name, version, every_source, pages)
            lines.append(" \\\n".join([f"{name}=={version}", *[f"    --hash=sha256:{digest}" for digest in digests]]))
        note = (
            f"\n# Unreachable when locked (their files are refused until `make lock` reads them): "
            f"{', '.join(sorted(unreachable))}."
            if unreachable
            else ""
        )
        (DEPLOY / path).write_text(
            HEADER.format(what=what, sources=", ".join(every_source), unreachable=note) + "\n" + "\n".join(lines) + "\n"
        )
        print(f"deploy/{path}: {len(pins)} pins")


if __name__ == "__main__":
    main()
