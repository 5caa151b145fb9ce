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
# Not scanned: the one module, and this file, whose strings spell the forms it looks for.
# support/backfill_daemon.py sets a constant of dagster._daemon.controller, a module and not a name that SYMBOLS can
# hand out; it checks the constant exists and fails naming itself after an upgrade that removed it (tests only).
EXEMPT = {INTERNALS, Path(__file__).relative_to(REPO_ROOT).as_posix(), "ml_platform_tests/support/backfill_daemon.py"}
SCANNED = ("ml_platform", "demo", "benchmarks", "ml_platform_tests")
# A string that is a private module path (import_module, a dagster.yaml `module:`) or imports one (a script).
PRIVATE_MODULE_TEXT = re.compile(r"^\s*dagster\._[\w.]*\s*$|\b(?:from|import)\s+dagster\._\w")
# Dagster's own test suite, run as-is from the release sdist (ml_platform_tests/support/dagster_storage_suite.py).
DAGSTER_TEST_SUITE = "dagster_tests"
IMPORT_IN_TEXT = re.compile(r"from ml_platform\.dagster_internals import ([\w, ]+)")

UNREACHABLE_POSTGRES = "postgresql+psycopg2://nobody@127.0.0.1:1/none"  # Dagster's __init__ connects to nothing

# The platform's subclasses of Dagster classes, and how to build an instance of the Dagster class each extends
# (whose __init__ sets the instance attributes the subclass reads or replaces).
SUBCLASSES: dict[str, Callable[[Path], Any]] = {
    "ml_platform.storage.sqlite.PooledSqliteEventLogStorage": lambda directory: dagster_internals.SqliteEventLogStorage(
        str(directory)
    ),
    "ml_platform.storage.postgres.PooledPostgresEventLogStorage": lambda _: importlib.import_module(
        "dagster_postgres"
    ).PostgresEventLogStorage(UNREACHABLE_POSTGRES, should_autocreate_tables=False),
    "ml_platform.run_launcher.LocalProcessRunLauncher": lambda _: dagster.DefaultRunLauncher(),
}
ATTRIBUTE = "instance attribute"
# Every Dagster member each subclass overrides, calls or reads (through self., cls. or super()): the Dagster class
# that defines it and its signature in Dagster CHECKED_AGAINST, or ATTRIBUTE for one Dagster's __init__ sets.
DAGSTER_MEMBERS: dict[str, dict[str, str]] = {
    "ml_platform.storage.sqlite.PooledSqliteEventLogStorage": {
        "__init__": "SqliteEventLogStorage(self, base_dir: str, inst_data: dagster._serdes.config_class.ConfigurableClassData | None = None)",
        "_base_dir": ATTRIBUTE,
        "_connect": "SqliteEventLogStorage(self, shard: str) -> collections.abc.Iterator[sqlalchemy.engine.base.Connection]",
        "_db_lock": ATTRIBUTE,
        "_initdb": "SqliteEventLogStorage(self, engine: sqlalchemy.engine.base.Engine, for_index_shard=False) -> None",
        "_initialized_dbs": ATTRIBUTE,
        "_inst_data": ATTRIBUTE,
        "_store_asset_event": "SqlEventLogStorage(self, conn: sqlalchemy.engine.base.Connection, event: dagster._core.events.log.EventLogEntry, event_id: int) -> None",
        "_store_asset_event_tags": "SqlEventLogStorage(self, conn: sqlalchemy.engine.base.Connection, events: collections.abc.Sequence[dagster._core.events.log.EventLogEntry], event_ids: collections.abc.Sequence[int]) -> None",
        "config_type": "SqliteEventLogStorage(cls) -> Union[type[bool | float | int | str], type[dict[Any, Any] | list[Any]], ForwardRef('ConfigType'), ForwardRef('Field'), collections.abc.Mapping[str, Any], collections.abc.Sequence[Any]]",
        "conn_string_for_shard": "SqliteEventLogStorage(self, shard_name: str) -> str",
        "dispose": "SqliteEventLogStorage(self) -> None",
        "end_watch": "SqliteEventLogStorage(self, run_id: str, handler: collections.abc.Callable[[dagster._core.events.log.EventLogEntry, str], None]) -> None",
        "from_config_value": "SqliteEventLogStorage(cls, inst_data: dagster._serdes.config_class.ConfigurableClassData | None, config_value: 'SqliteStorageConfig') -> 'SqliteEventLogStorage'",
        "has_table": "SqliteEventLogStorage(self, table_name: str) -> bool",
        "index_transaction": "SqlEventLogStorage(self) -> collections.abc.Iterator[sqlalchemy.engine.base.Connection]",
        "prepare_insert_event": "SqlEventLogStorage(self, event: dagster._core.events.log.EventLogEntry) -> Any",
        "prepare_insert_event_batch": "SqlEventLogStorage(self, events: collections.abc.Sequence[dagster._core.events.log.EventLogEntry]) -> Any",
        "register_instance": "MayHaveInstanceWeakref(self, instance: ~T_DagsterInstance) -> None",
        "run_connection": "SqliteEventLogStorage(self, run_id: str | None = None) -> Any",
        "store_event_batch": "EventLogStorage(self, events: collections.abc.Sequence['EventLogEntry']) -> None",
        "upgrade": "SqliteEventLogStorage(self) -> None",
        "watch": "SqliteEventLogStorage(self, run_id: str, cursor: str | None, callback: collections.abc.Callable[[dagster._core.events.log.EventLogEntry, str], None]) -> None",
        "wipe": "SqliteEventLogStorage(self) -> None",
    },
    "ml_platform.storage.postgres.PooledPostgresEventLogStorage": {
        "__init__": "PostgresEventLogStorage(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data: dagster._serdes.config_class.ConfigurableClassData | None = None, token_provider: 'PgTokenProvider | None' = None)",
        "_connect": "PostgresEventLogStorage(self) -> ContextManager[sqlalchemy.engine.base.Connection]",
        "_allocate_concurrency_slots": "SqlEventLogStorage(self, conn, concurrency_key: str, num: int) -> list[str]",
        "_engine": ATTRIBUTE,
        "_instance": "MayHaveInstanceWeakref(self) -> ~T_DagsterInstance",
        "_reconcile_concurrency_limits_from_slots": "SqlEventLogStorage(self) -> None",
        "_store_asset_event": "PostgresEventLogStorage(self, conn: sqlalchemy.engine.base.Connection, event: dagster._core.events.log.EventLogEntry, event_id: int) -> None",
        "_store_asset_event_tags": "SqlEventLogStorage(self, conn: sqlalchemy.engine.base.Connection, events: collections.abc.Sequence[dagster._core.events.log.EventLogEntry], event_ids: collections.abc.Sequence[int]) -> None",
        "_token_provider": ATTRIBUTE,
        "dispose": "PostgresEventLogStorage(self) -> None",
        "from_config_value": "PostgresEventLogStorage(cls, inst_data: dagster._serdes.config_class.ConfigurableClassData | None, config_value: collections.abc.Mapping[str, typing.Any]) -> 'PostgresEventLogStorage'",
        "has_concurrency_limits_table": ATTRIBUTE,
        "has_default_pool_limit_col": ATTRIBUTE,
        "has_instance": "MayHaveInstanceWeakref(self) -> bool",
        "has_table": "PostgresEventLogStorage(self, table_name: str) -> bool",
        "index_transaction": "PostgresEventLogStorage(self) -> collections.abc.Iterator[sqlalchemy.engine.base.Connection]",
        "initialize_concurrency_limit_to_default": "SqlEventLogStorage(self, concurrency_key: str) -> bool",
        "optimize_for_webserver": "PostgresEventLogStorage(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None",
        "postgres_url": ATTRIBUTE,
        "prepare_insert_event": "SqlEventLogStorage(self, event: dagster._core.events.log.EventLogEntry) -> Any",
        "prepare_insert_event_batch": "SqlEventLogStorage(self, events: collections.abc.Sequence[dagster._core.events.log.EventLogEntry]) -> Any",
        "store_asset_check_event": "SqlEventLogStorage(self, event: dagster._core.events.log.EventLogEntry, event_id: int | None) -> None",
        "store_event": "PostgresEventLogStorage(self, event: dagster._core.events.log.EventLogEntry) -> None",
        "store_event_batch": "PostgresEventLogStorage(self, events: collections.abc.Sequence[dagster._core.events.log.EventLogEntry]) -> None",
    },
    "ml_platform.run_launcher.LocalProcessRunLauncher": {
        "__init__": "MayHaveInstanceWeakref(self)",
        "_inst_data": ATTRIBUTE,
        "_instance": "MayHaveInstanceWeakref(self) -> ~T_DagsterInstance",
        "check_run_worker_health": "RunLauncher(self, run: dagster._core.storage.dagster_run.DagsterRun) -> dagster._core.launcher.base.CheckRunHealthResult",
        "config_type": "ConfigurableClass(cls) -> 'UserConfigSchema'",
        "dispose": "RunLauncher(self) -> None",
        "from_config_value": "ConfigurableClass(cls, inst_data: dagster._serdes.config_class.ConfigurableClassData, config_value: collections.abc.Mapping[str, typing.Any]) -> Self",
        "get_run_worker_debug_info": "RunLauncher(self, run: dagster._core.storage.dagster_run.DagsterRun, include_container_logs: bool | None = True) -> str | None",
        "inst_data": "ConfigurableClass(self) -> dagster._serdes.config_class.ConfigurableClassData | None",
        "launch_run": "RunLauncher(self, context: dagster._core.launcher.base.LaunchRunContext) -> None",
        "resume_run": "RunLauncher(self, context: dagster._core.launcher.base.ResumeRunContext) -> None",
        "supports_check_run_worker_health": "RunLauncher(self) -> bool",
        "supports_resume_run": "RunLauncher(self) -> bool",
        "terminate": "RunLauncher(self, run_id: str) -> bool",
    },
}


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
            if node.module.startswith("dagster._") or (
                node.module == "dagster" and any(alias.name.startswith("_") for alias in node.names)
            ):
                found.append((node.lineno, f"from {node.module} import ..."))
            elif library_submodule(node.module):
                package = node.module.split(".")[0]
                hidden = sorted(alias.name for alias in node.names if alias.name not in public_names(package))
                if hidden:
                    found.append(
                        (node.lineno, f"from {node.module} import {', '.join(hidden)} (not exported by {package})")
                    )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PRIVATE_MODULE_TEXT.search(node.value):
            found.append((node.lineno, f"string {PRIVATE_MODULE_TEXT.search(node.value).group().strip()!r}"))
    return sorted(found)


def library_submodule(module: str) -> bool:
    package, _, rest = module.partition(".")
    return package.startswith("dagster_") and package != DAGSTER_TEST_SUITE and bool(rest)


def exported_names(package: str) -> set[str]:
    return {name for name in dir(importlib.import_module(package)) if not name.startswith("_")}


def scanned_files() -> list[Path]:
    """The repository's tracked .py files (its .venv and untracked files aside), but for EXEMPT."""
    listed = subprocess.run(
        ["git", "ls-files", "--", *SCANNED], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [
        REPO_ROOT / name
        for name in listed
        if name.endswith(".py") and name not in EXEMPT and (REPO_ROOT / name).exists()
    ]


def test_no_dagster_private_import_outside_the_internals_module() -> None:
    offending = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
        for path in scanned_files()
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
        SIGNATURE = "(self, inst_data: dagster._serdes.config_class.ConfigurableClassData | None = None)"
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
    imported = {
        alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
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
    used = set().union(*(imported_from_internals(path.read_text()) for path in scanned_files()))
    used -= {"CHECKED_AGAINST", "SYMBOLS"}
    assert sorted(used - set(SYMBOLS)) == [], "imported from dagster_internals but not in SYMBOLS"
    assert sorted(set(SYMBOLS) - used) == [], "in dagster_internals.SYMBOLS but used nowhere: remove it"


def platform_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def accessed_names(cls: type) -> tuple[set[str], set[str]]:
    """The names the platform's classes in `cls`'s MRO read, and those they assign, through self., cls. or super()."""
    read: set[str] = set()
    assigned: set[str] = set()
    for klass in (k for k in cls.__mro__ if k.__module__.startswith("ml_platform.")):
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(klass)))):
            if isinstance(node, ast.Attribute) and (
                (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                or (isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "super")
            ):
                (assigned if isinstance(node.ctx, ast.Store) else read).add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("hasattr", "getattr")
                and len(node.args) > 1
                and ast.unparse(node.args[0]) == "self"
                and isinstance(node.args[1], ast.Constant)
            ):
                read.add(node.args[1].value)  # hasattr(self, "_base_dir")
    return read, assigned


def dagster_members(cls: type, stock: Any) -> dict[str, str]:
    """Each Dagster member `cls` overrides, calls or reads -> "Class(signature)" of the Dagster class defining it,
    ATTRIBUTE for an instance attribute of `stock` (Dagster's own class), or "missing" for a name read but found
    nowhere (Dagster renamed or dropped it)."""
    own = [k for k in cls.__mro__ if k.__module__.startswith("ml_platform.")]
    dagster_bases = [k for k in cls.__mro__ if k.__module__.split(".")[0].startswith("dagster")]
    defined = set().union(*(vars(k) for k in own))
    read, assigned = accessed_names(cls)
    members = {}
    for name in sorted(defined | read | assigned):
        if (name.startswith("__") and name != "__init__") or name == "_abc_impl":  # Python's, not Dagster's
            continue
        base = next((k for k in dagster_bases if name in vars(k)), None)
        if base is not None:
            member = inspect.getattr_static(base, name)
            function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            members[name] = f"{base.__qualname__}{inspect.signature(function)}" if callable(function) else ATTRIBUTE
        elif name in vars(stock):
            members[name] = ATTRIBUTE
        elif name not in defined and name not in assigned:
            members[name] = "missing"
    return members


@pytest.mark.parametrize("path", sorted(SUBCLASSES))
def test_the_dagster_members_a_subclass_relies_on_are_as_checked(path: str, tmp_path: Path) -> None:
    found = dagster_members(platform_class(path), SUBCLASSES[path](tmp_path))
    listed = DAGSTER_MEMBERS.get(path, {})
    changed = [
        f"  {name}: listed {listed.get(name, '(not listed)')}, Dagster {dagster.__version__} has "
        f"{found.get(name, '(none)')}"
        for name in sorted(set(found) | set(listed))
        if found.get(name) != listed.get(name)
    ]
    assert not changed, (
        f"{path} relies on Dagster members that differ from DAGSTER_MEMBERS (checked against {CHECKED_AGAINST}); "
        "re-read what the subclass assumes of each, then update the list:\n" + "\n".join(changed)
    )


def test_every_subclass_of_a_private_dagster_class_is_checked() -> None:
    private_bases = {name for name in SYMBOLS if isinstance(getattr(dagster_internals, name), type)}
    subclasses = {
        f"{path.relative_to(REPO_ROOT).with_suffix('').as_posix().replace('/', '.')}.{node.name}"
        for path in scanned_files()
        if path.relative_to(REPO_ROOT).parts[0] == "ml_platform"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and {ast.unparse(base) for base in node.bases} & private_bases
    }
    assert sorted(subclasses - set(SUBCLASSES)) == [], "add these to SUBCLASSES and DAGSTER_MEMBERS"
