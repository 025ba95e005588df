"""The bus's tuning options, validated once at construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import check_options

__all__ = ["DEFAULT_RETENTION_MS", "Options"]

DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000
"""Messages older than this (7 days) are deleted, acknowledged or not."""


@dataclass(frozen=True, slots=True)
class Options:
    """Keyword options of :class:`~jetpack.mcp_mail.MCPMailAdapter` (all positive integers)."""

    presence_window_ms: int = 90_000
    retention_ms: int = DEFAULT_RETENTION_MS
    poll_interval_ms: int = 500
    handler_attempts: int = 4
    handler_retry_base_ms: int = 250
    cleanup_interval_ms: int = 60_000
    cleanup_batch: int = 1_000
    busy_timeout_ms: int = 10_000
    batch_size: int = 256

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Options:
        """Validate ``options``; an unknown name or a non-positive value is a ValidationError."""
        check_options({k: v for k, v in options.items() if k not in _NAMES}, _NAMES)
        for name, value in options.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValidationError(name, "must be a positive integer")
        return cls(**options)


_NAMES = frozenset(f.name for f in fields(Options))
