"""The stages' thread helpers: results in input order, bounded look-ahead, failures where they belong."""

from __future__ import annotations

import threading

import pytest

from ml_platform.parallel import computed_ahead, ordered_map


def test_computed_ahead_yields_in_order_and_computes_only_the_next_item_while_one_is_handled() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def square(item: int) -> int:
        with lock:
            started.append(item)
        return item * item

    results = computed_ahead(square, range(6))
    seen = []
    for number, result in enumerate(results):
        seen.append(result)
        # while result `number` is handed out, items up to number + 1 may have started, never number + 2
        with lock:
            assert max(started) <= number + 1, started
    assert seen == [item * item for item in range(6)]


def test_computed_ahead_raises_a_failed_item_after_the_results_before_it() -> None:
    def fail_on_two(item: int) -> int:
        if item == 2:
            raise ValueError("item 2 is bad")
        return item

    results = computed_ahead(fail_on_two, range(4))
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match="item 2 is bad"):
        next(results)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_ordered_map_keeps_the_input_order(threads: int) -> None:
    assert list(ordered_map(lambda item: -item, range(20), threads)) == [-item for item in range(20)]
