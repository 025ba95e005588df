"""Clock helpers: every timestamp in Jetpack is a timezone-aware UTC datetime.

Stores that keep integers (SQLite, D1) use epoch milliseconds, as the seed's D1
schema does; these helpers convert both ways without losing precision.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["from_ms", "to_ms", "utcnow"]


def utcnow() -> datetime:
    """Return the current time, UTC, truncated to whole milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def to_ms(value: datetime) -> int:
    """Convert an aware datetime to epoch milliseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetime; Jetpack timestamps are timezone-aware UTC")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


def from_ms(value: int) -> datetime:
    """Convert epoch milliseconds to an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
