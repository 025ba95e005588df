"""Input checks of the bus's methods: each raises ValidationError naming the field.

The message checks are the shared ones (``jetpack.shared.rules``), so every mail
backend refuses the same input; only the lease TTL bound is named here.
"""

from __future__ import annotations

from jetpack.shared import rules
from jetpack.shared.rules import (
    MAX_TTL_MS,
    check_agent_id,
    check_info,
    check_limit,
    check_message_id,
    message_type,
    subscription_key,
)

__all__ = [
    "MAX_LEASE_TTL_MS",
    "check_agent_id",
    "check_info",
    "check_limit",
    "check_message_id",
    "check_ttl",
    "message_type",
    "subscription_key",
]

MAX_LEASE_TTL_MS = MAX_TTL_MS
"""Longest lease TTL accepted (a year, ``rules.MAX_TTL_MS``); renew instead of asking for more."""


def check_ttl(ttl_ms: int, field: str = "ttl_ms") -> int:
    """A positive integer of milliseconds, at most a year."""
    return rules.check_ttl(ttl_ms, field, maximum=MAX_LEASE_TTL_MS)
