"""Id generation: collision-free without coordination."""

from __future__ import annotations

import secrets

__all__ = ["base36", "new_id", "new_memory_id", "new_message_id", "new_task_id"]

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(value: int) -> str:
    """Encode a non-negative integer in lower-case base 36."""
    if value < 0:
        raise ValueError("base36 takes a non-negative integer")
    if value == 0:
        return "0"
    out: list[str] = []
    while value:
        value, rem = divmod(value, 36)
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def new_id(prefix: str, bits: int = 64) -> str:
    """Return ``prefix-`` + base36 of a random ``bits``-bit value.

    64 bits make a collision among a million ids about 1 in 37 million; stores
    still check (an existing id is a conflict, never an overwrite) and retry.
    """
    return f"{prefix}-{base36(secrets.randbits(bits))}"


def new_task_id() -> str:
    """A task id such as ``bd-2ntvjz3kq8d1x``."""
    return new_id("bd")


def new_memory_id() -> str:
    """A memory id such as ``mem-1y3xq0f8kz9ab``."""
    return new_id("mem")


def new_message_id() -> str:
    """A message id such as ``msg-3k0d9s8qj2xa1``."""
    return new_id("msg")
