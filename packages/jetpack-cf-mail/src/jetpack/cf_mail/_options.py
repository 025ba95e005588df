"""The bus's tuning options, validated once at construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import check_options

__all__ = ["OPTION_NAMES", "Options"]


@dataclass(frozen=True, slots=True)
class Options:
    """Keyword options of :class:`~jetpack.cf_mail.CloudflareMailBus` (milliseconds unless named).

    ``retries`` may be 0; every other option is a positive integer.
    """

    presence_window_ms: int = 90_000
    handler_attempts: int = 4
    handler_retry_base_ms: int = 250
    reconnect_base_ms: int = 100
    reconnect_max_ms: int = 5_000
    open_timeout_ms: int = 30_000
    ack_timeout_ms: int = 10_000
    request_timeout_ms: int = 30_000
    retries: int = 4

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Options:
        """Validate ``options``; an unknown name or a bad value is a ValidationError naming it."""
        check_options({k: v for k, v in options.items() if k not in OPTION_NAMES}, OPTION_NAMES)
        for name, value in options.items():
            floor = 0 if name == "retries" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < floor:
                raise ValidationError(name, f"must be an integer >= {floor}")
        return cls(**options)


OPTION_NAMES = frozenset(f.name for f in fields(Options))
"""The options the bus takes (the keys a ``[cf_mail]`` config table may hold)."""
