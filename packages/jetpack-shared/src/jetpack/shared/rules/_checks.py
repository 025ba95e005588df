"""Checks of plain arguments (ids, TTLs, texts, JSON objects) that every store method shares.

Each raises :class:`~jetpack.shared.errors.ValidationError` naming the argument,
before anything is written.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from jetpack.shared._base import ID_PATTERN, json_problem, text_problem
from jetpack.shared.errors import ValidationError

__all__ = [
    "MAX_TTL_MS",
    "check_agent_id",
    "check_json_object",
    "check_limit",
    "check_options",
    "check_text",
    "check_ttl",
    "nearest",
    "option_names",
]

_ID = re.compile(ID_PATTERN)

MAX_TTL_MS = 365 * 24 * 60 * 60 * 1000
"""Longest TTL any store accepts (claims, leases, windows): one year. Renew instead."""


def check_agent_id(agent_id: object, field: str = "agent_id") -> str:
    """An agent id: 1-128 characters of letters, digits and ``._:/-``, no spaces."""
    if not isinstance(agent_id, str) or not _ID.match(agent_id):
        raise ValidationError(field, "must be 1-128 characters of letters, digits and ._:/-")
    return agent_id


def check_ttl(ttl_ms: object, field: str = "ttl_ms", maximum: int = MAX_TTL_MS) -> int:
    """A positive integer of milliseconds, at most ``maximum`` (one year by default)."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
        raise ValidationError(field, "must be a positive integer of milliseconds")
    if ttl_ms > maximum:
        raise ValidationError(field, f"must be at most {maximum} ms")
    return ttl_ms


def check_limit(limit: object, field: str = "limit") -> int:
    """A page size from 1 to 10 000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ValidationError(field, "must be an integer from 1 to 10000")
    return limit


def check_text(value: object, field: str) -> str:
    """A string that can be stored as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    problem = text_problem(value)
    if problem:
        raise ValidationError(field, problem)
    return value


def check_json_object(value: object, field: str, limit: int | None = None) -> dict[str, Any]:
    """A JSON object: nesting, keys, texts and numbers checked; at most ``limit`` bytes.

    See :func:`jetpack.shared._base.json_problem` for what is refused
    (:data:`~jetpack.shared.MAX_JSON_DEPTH` levels at most).
    """
    if not isinstance(value, Mapping):
        raise ValidationError(field, "must be a JSON object")
    data = dict(value)
    problem = json_problem(data, limit)
    if problem:
        raise ValidationError(field, problem)
    return data


def nearest(name: str, known: Collection[str]) -> str | None:
    """The known name closest to a misspelt ``name``, if one is close enough."""
    found = difflib.get_close_matches(name, sorted(known), n=1)
    return found[0] if found else None


def option_names(factory: Callable[..., object]) -> frozenset[str]:
    """The keyword arguments ``factory`` (a class or function) takes by name."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(factory).parameters.values()
    return frozenset(p.name for p in parameters if p.kind in kinds and p.name != "self")


def check_options(unknown: Mapping[str, object], known: Collection[str]) -> None:
    """Refuse options a store does not take: ValidationError naming the first unknown key.

    A store's constructor collects what it does not know in ``**unknown`` and
    calls this, so a misspelt option fails loudly (with the nearest known name)
    instead of a TypeError or, worse, being dropped.
    """
    for name in unknown:
        hint = nearest(name, known)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        raise ValidationError(
            name, f"unknown option{suggestion} (known: {', '.join(sorted(known))})"
        )
