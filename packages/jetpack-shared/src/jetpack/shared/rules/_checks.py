"""Checks of plain arguments (ids, TTLs) that every store method shares.

Each raises :class:`~jetpack.shared.errors.ValidationError` naming the argument,
before anything is written.
"""

from __future__ import annotations

import re

from jetpack.shared._base import ID_PATTERN
from jetpack.shared.errors import ValidationError

__all__ = ["check_agent_id", "check_ttl"]

_ID = re.compile(ID_PATTERN)


def check_agent_id(agent_id: object, field: str = "agent_id") -> str:
    """An agent id: 1-128 characters of letters, digits and ``._:/-``, no spaces."""
    if not isinstance(agent_id, str) or not _ID.match(agent_id):
        raise ValidationError(field, "must be 1-128 characters of letters, digits and ._:/-")
    return agent_id


def check_ttl(ttl_ms: object, field: str = "ttl_ms", maximum: int | None = None) -> int:
    """A positive integer of milliseconds, at most ``maximum`` when given."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
        raise ValidationError(field, "must be a positive integer of milliseconds")
    if maximum is not None and ttl_ms > maximum:
        raise ValidationError(field, f"must be at most {maximum} ms")
    return ttl_ms
