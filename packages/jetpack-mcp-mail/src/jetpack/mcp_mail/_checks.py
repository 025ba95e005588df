"""Input checks shared by the bus's methods: each raises ValidationError naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetpack.shared import MAX_METADATA_BYTES, MessageType, rules
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import MAX_TTL_MS, check_agent_id, check_json_object, check_text

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


def message_type(value: MessageType | str, field: str = "type") -> MessageType:
    """One of the 19 message types, or ValidationError."""
    try:
        return MessageType(value)
    except ValueError:
        raise ValidationError(field, f"unknown message type {value!r}") from None


def subscription_key(value: MessageType | str) -> str:
    """A message type value, or ``"*"``."""
    return "*" if value == "*" else message_type(value).value


def check_ttl(ttl_ms: int, field: str = "ttl_ms") -> int:
    """A positive integer of milliseconds, at most a year."""
    return rules.check_ttl(ttl_ms, field, maximum=MAX_LEASE_TTL_MS)


def check_limit(limit: int) -> int:
    """A page size from 1 to 10 000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ValidationError("limit", "must be an integer from 1 to 10000")
    return limit


def check_info(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """Heartbeat extras: a JSON object of at most MAX_METADATA_BYTES."""
    if info is None:
        return {}
    return check_json_object(info, "info", MAX_METADATA_BYTES)


def check_message_id(message_id: object) -> str:
    """A non-empty string that can be stored (no lone surrogates)."""
    if not isinstance(message_id, str) or not message_id.strip():
        raise ValidationError("message_id", "must be a non-empty string")
    return check_text(message_id, "message_id")
