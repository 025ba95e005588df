"""Small helpers for the contract tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` every 10 ms until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
