"""Waiting in tests for something another thread or process does: on a condition, never for a
fixed time.

    stored = wait_until(lambda: GatewayEvent.objects.filter(event_type="…").first(),
                        describe="the event is stored")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not come true in time (an AssertionError, so the test fails, not errors)."""


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout_seconds: float = 15.0,
    interval_seconds: float = 0.05,
    describe: str | Callable[[], str] = "",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that. After
    ``timeout_seconds`` without, raise WaitTimeout naming what was awaited (``describe``, a text or
    a function giving one at that moment). The predicate is called once more at the deadline, so a
    slow machine does not fail a condition that has just come true."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval_seconds, max(deadline - time.monotonic(), 0)))
    what = describe() if callable(describe) else describe
    raise WaitTimeout(f"waited {timeout_seconds:g} s{' until ' + what if what else ' for the condition'}; it never came true")
