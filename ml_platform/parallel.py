"""A bounded, order-keeping thread map: how a daily stage spreads its days over the cores it is given.

The stages' work is Parquet reads and writes (pyarrow) and numpy/Arrow kernels, which release the GIL, so
threads run them side by side without copying a day between processes. Results come back in the order of
the inputs, and each is computed exactly as one thread would compute it: the outputs do not depend on the
thread count. At most `threads` items are in flight, so a stage holds `threads` days at once, never a range.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], threads: int) -> Iterator[Result]:
    """`map(function, items)` on up to `threads` threads, `threads` items ahead of the consumer at most;
    one thread runs everything in the caller's thread (no pool). An exception surfaces where its item's
    result would have been yielded; a consumer that stops early cancels what was not started."""
    if threads <= 1:
        yield from map(function, items)
        return
    yield from _pooled(function, items, threads, threads)


def computed_ahead(function: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]:
    """`map(function, items)` with the next item computed in one background thread while the consumer handles
    this one's result: work the consumer does between items (a stage's writes) overlaps the next item's instead
    of leaving the other cores idle. At most one result waits besides the one handed out."""
    yield from _pooled(function, items, workers=1, in_flight=2)


def _pooled(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int, in_flight: int
) -> Iterator[Result]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ml-platform-stage")
    pending: deque[Future[Result]] = deque()
    try:
        for item in items:
            if len(pending) >= in_flight:
                yield pending.popleft().result()
            pending.append(pool.submit(function, item))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
