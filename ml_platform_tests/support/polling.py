"""The one wait loop of the tests: poll a check until it returns something truthy, or time out naming what."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T],
    what: str,
    *,
    timeout: float,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
    details: Callable[[], str] | None = None,
) -> T:
    """Call `check` every `interval` seconds and return its first truthy value.

    `check` may raise to give up at once (a load error, say). Between polls `alive()` may raise too
    (a server that exited). After `timeout` seconds: TimeoutError naming `what`, with `details()`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}" + (f"\n{details()}" if details else "")
            )
        if alive is not None:
            alive()
        time.sleep(interval)
