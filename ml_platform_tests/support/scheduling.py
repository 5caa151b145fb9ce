"""`make test`'s xdist scheduling (`--dist loadfile`): a file runs whole on one worker, and the test files that
use the same expensive session platform run on one worker together, so that it is built once instead of once
per worker (registered as a plugin by ml_platform_tests/conftest.py).

A group is one work unit, sent in the collection order of its first file (`--no-loadscope-reorder`), except
that SENT_FIRST's files are collected first: Dagster's storage suite is two pytest sessions of its own that keep
both cores busy while its worker only waits, so it runs from the start beside the other worker's files (the
deploy files, then the e2e files that mostly wait on servers) instead of beside CPU-bound integration files,
and is not what a worker ends the session on.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

# test file -> the group it runs in; files not listed are a unit of their own.
# use_case_platform (fraud, prices: ~20 s each) and news_platform (support/use_cases.py).
_USE_CASE_PLATFORMS = "use_case_platform and news_platform"
SHARED_PLATFORM_GROUPS = {
    "ml_platform_tests/integration/test_news.py": _USE_CASE_PLATFORMS,
    "ml_platform_tests/integration/test_performance_use_cases.py": _USE_CASE_PLATFORMS,
    "ml_platform_tests/integration/test_serving_batching.py": _USE_CASE_PLATFORMS,
    "ml_platform_tests/integration/test_use_cases.py": _USE_CASE_PLATFORMS,
}


SENT_FIRST = ("ml_platform_tests/integration/test_dagster_storage_suite.py",)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in SENT_FIRST)  # stable: the rest keep their order


class SharedPlatformScheduling(LoadFileScheduling):
    """LoadFileScheduling whose unit is a file, or the group of SHARED_PLATFORM_GROUPS the file belongs to."""

    def _split_scope(self, nodeid: str) -> str:
        path = super()._split_scope(nodeid)
        return SHARED_PLATFORM_GROUPS.get(path, path)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: `-p no:xdist` runs have no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadFileScheduling | None:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler for any other --dist
    return SharedPlatformScheduling(config, log)
