"""Re-resolve the pinned dependency locks from pyproject.toml: `make lock`.

`deploy/requirements.lock` holds what the images run (the project's dependencies and its `image`
extra); `deploy/requirements-test.lock` holds what only the tests add. `make install` uses both as
pip constraints and the Dockerfiles install the first with `--no-deps`, so a fresh clone, CI and
the images get exactly these versions until this script runs again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
RUNTIME_LOCK = DEPLOY / "requirements.lock"
TEST_LOCK = DEPLOY / "requirements-test.lock"
HEADER = """\
# {what}.
# Fully pinned (transitive included), resolved for CPython 3.11 on linux/x86_64 from
# pyproject.toml. Do not edit by hand: `make lock` regenerates both lock files.
# torch is pinned without a local label: the CPU image installs 2.13.0+cpu from the PyTorch CPU
# index first, the GPU image the CUDA build; both satisfy torch==2.13.0.
"""


def resolve(requirement: str, constraints: list[str]) -> dict[str, str]:
    """Every distribution pip would install for `requirement` into an empty environment."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--report", str(report), requirement, *[arg for path in constraints for arg in ("-c", path)]],
            cwd=ROOT, check=True,
        )
        installs = json.loads(report.read_text())["install"]
    pins = {}
    for item in installs:
        name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
        if name != "ml-platform":
            pins[name] = item["metadata"]["version"].split("+")[0]
    return pins


def write(path: Path, what: str, pins: dict[str, str]) -> None:
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    path.write_text(HEADER.format(what=what) + "\n" + "\n".join(lines) + "\n")


def main() -> None:
    """`make lock` re-resolves everything to the newest allowed versions; extra arguments are pip
    constraint files (e.g. the current runtime lock, to add a test dependency without moving it)."""
    constraints = sys.argv[1:]
    runtime = resolve(".[image]", constraints)
    everything = resolve(".[image,test]", constraints)
    changed = {name: (runtime[name], everything[name]) for name in runtime if everything.get(name) != runtime[name]}
    if changed:
        raise SystemExit(f"the test extra moves runtime pins {changed}: pin them in pyproject.toml")
    write(RUNTIME_LOCK, "Runtime dependencies of the ml_platform images and of `make install`", runtime)
    write(TEST_LOCK, "What the test suite adds to deploy/requirements.lock", {
        name: version for name, version in everything.items() if name not in runtime
    })
    print(f"{RUNTIME_LOCK.relative_to(ROOT)}: {len(runtime)} pins; "
          f"{TEST_LOCK.relative_to(ROOT)}: {len(everything) - len(runtime)} pins")


if __name__ == "__main__":
    main()
