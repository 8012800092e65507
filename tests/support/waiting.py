"""Waiting for what another thread, process or server does: check until it holds, or fail saying what did
not happen. ``wait_until`` blocks; ``eventually`` is for async tests, whose event loop (and a server it
serves, such as kmock) runs between the checks."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.1, what: str = "the condition"
) -> T:
    """The first truthy value ``condition()`` returns, checking every ``interval`` seconds; an
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 60.0,
    interval: float = 0.1,
    what: str = "the condition",
) -> T:
    """:func:`wait_until` in a coroutine. ``condition`` runs on the loop: a quick check, or a coroutine
    (for a blocking one, ``lambda: asyncio.to_thread(check)``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
