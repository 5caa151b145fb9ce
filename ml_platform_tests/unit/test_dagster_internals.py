"""Dagster's non-public API is used in one module (ml_platform/dagster_internals.py), and a Dagster upgrade fails here.

Three things break silently on an upgrade: a private name moved, a base method the platform's subclasses override
or call changed its signature, a private attribute they read or replace was renamed. This file lists each of
them with the signature it was checked against (`CHECKED_AGAINST`), fails while the installed Dagster is
another version, and checks every listed name, signature and attribute against the installed one.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster
import pytest

from ml_platform import dagster_internals
from ml_platform.dagster_internals import CHECKED_AGAINST, SYMBOLS

REPO_ROOT = Path(__file__).resolve().parents[2]
INTERNALS = "ml_platform/dagster_internals.py"
SCANNED = ("ml_platform", "demo", "benchmarks", "ml_platform_tests")
PRIVATE_MODULE_TEXT = re.compile(r"\bdagster\._\w")
# Dagster's own test suite, run as-is from the release sdist (ml_platform_tests/support/dagster_storage_suite.py).
DAGSTER_TEST_SUITE = "dagster_tests"
IMPORT_IN_TEXT = re.compile(r"from ml_platform\.dagster_internals import ([\w, ]+)")

# Every Dagster member the platform's subclasses override, call or read (through self., super() or cls.), with its
# signature in Dagster CHECKED_AGAINST; ATTRIBUTE for an instance attribute Dagster's own __init__ sets.
ATTRIBUTE = "attribute"
DAGSTER_MEMBERS: dict[str, dict[str, str]] = {}


def private_uses(source: str, public_names: Callable[[str], set[str]]) -> list[tuple[int, str]]:
    """(line, what) for each use of a non-public Dagster module in `source`: an import of `dagster._x`, a name
    from a submodule of a Dagster library that the library does not export, or a string naming `dagster._x`
    (`importlib.import_module("dagster._...")`, a dagster.yaml module path, a script run in a subprocess)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dagster._") or library_submodule(alias.name):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("dagster._") or (node.module == "dagster" and any(
                    alias.name.startswith("_") for alias in node.names)):
                found.append((node.lineno, f"from {node.module} import ..."))
            elif library_submodule(node.module):
                package = node.module.split(".")[0]
                hidden = sorted(alias.name for alias in node.names if alias.name not in public_names(package))
                if hidden:
                    found.append((node.lineno, f"from {node.module} import {', '.join(hidden)} (not exported by {package})"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PRIVATE_MODULE_TEXT.search(node.value):
            found.append((node.lineno, f"string naming {PRIVATE_MODULE_TEXT.search(node.value).group()}..."))
    return sorted(found)


def library_submodule(module: str) -> bool:
    package, _, rest = module.partition(".")
    return package.startswith("dagster_") and package != DAGSTER_TEST_SUITE and bool(rest)


def exported_names(package: str) -> set[str]:
    return {name for name in dir(importlib.import_module(package)) if not name.startswith("_")}


def tracked_python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--", *SCANNED], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return [REPO_ROOT / name for name in listed if name.endswith(".py") and (REPO_ROOT / name).exists()]


def test_no_dagster_private_import_outside_the_internals_module() -> None:
    offending = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
        for path in tracked_python_files() if path.relative_to(REPO_ROOT).as_posix() != INTERNALS
        for line, what in private_uses(path.read_text(), exported_names)
    ]
    assert not offending, (
        "non-public Dagster API used outside ml_platform/dagster_internals.py; use the public name or documented "
        "string value, or add the name to dagster_internals.SYMBOLS with why and import it from there:\n"
        + "\n".join(offending)
    )


def test_the_scan_finds_every_form_of_private_use() -> None:
    source = textwrap.dedent('''
        import dagster._core.events
        from dagster._serdes import ConfigurableClassData
        from dagster import _check
        importlib.import_module("dagster._core.storage.event_log")
        SCRIPT = """
        from dagster._core.remote_representation.external_data import RepositorySnap
        """
        from dagster_postgres.utils import create_pg_engine
        from dagster_postgres.event_log import PostgresEventLogStorage
        import dagster_k8s.client
        from dagster_tests.storage_tests.utils.event_log_storage import TestEventLogStorage
        from dagster import DagsterEventType
        MODULE = "dagster.core.storage.event_log"
    ''')
    public = {"dagster_postgres": {"PostgresEventLogStorage"}}
    assert [line for line, _ in private_uses(source, lambda package: public[package])] == [2, 3, 4, 5, 6, 9, 11]


def test_dagster_is_the_version_the_private_uses_were_checked_against() -> None:
    members = "\n".join(f"  {cls}: {', '.join(sorted(names))}" for cls, names in DAGSTER_MEMBERS.items())
    assert dagster.__version__ == CHECKED_AGAINST, (
        f"Dagster is {dagster.__version__}, the platform's private uses were checked against {CHECKED_AGAINST}. "
        "Re-check each of these, then set CHECKED_AGAINST (ml_platform/dagster_internals.py) and the signatures in "
        "DAGSTER_MEMBERS (this file) to the new version's:\n"
        f"- names in dagster_internals.SYMBOLS (does the public API offer one now?): {', '.join(sorted(SYMBOLS))}\n"
        "- the Dagster members these subclasses override, call or read (did what they do change?):\n" + members
    )


@pytest.mark.parametrize("name", sorted(SYMBOLS))
def test_every_private_name_still_resolves(name: str) -> None:
    module = SYMBOLS[name].module
    assert hasattr(importlib.import_module(module), name), f"{module} no longer has {name} (dagster_internals.SYMBOLS)"
    assert getattr(dagster_internals, name) is getattr(importlib.import_module(module), name)


def test_the_type_checking_imports_name_the_same_symbols() -> None:
    tree = ast.parse((REPO_ROOT / INTERNALS).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imported = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imported == {name: private.module for name, private in SYMBOLS.items()}


def imported_from_internals(source: str) -> set[str]:
    """Names `source` imports from ml_platform.dagster_internals, in code or in a script it runs (a string)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "ml_platform.dagster_internals":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for listed in IMPORT_IN_TEXT.findall(node.value):
                names.update(name.strip() for name in listed.split(","))
    return names


def test_every_listed_name_is_used_and_every_used_name_listed() -> None:
    used = set().union(*(imported_from_internals(path.read_text()) for path in tracked_python_files()))
    used -= {"CHECKED_AGAINST", "SYMBOLS"}
    assert sorted(used - set(SYMBOLS)) == [], "imported from dagster_internals but not in SYMBOLS"
    assert sorted(set(SYMBOLS) - used) == [], "in dagster_internals.SYMBOLS but used nowhere: remove it"
