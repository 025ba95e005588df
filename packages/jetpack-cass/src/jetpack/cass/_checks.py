"""Argument checks shared by the store's methods: each names its field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetpack.cass._vectors import FloatMatrix, check_vector
from jetpack.shared import MemoryInput, MemoryType, parse
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import check_text

__all__ = [
    "MAX_LIMIT",
    "check_id",
    "check_limit",
    "check_query",
    "check_unit",
    "parse_input",
    "parse_type",
]

MAX_LIMIT = 10_000
"""Largest ``limit`` (and ``batch_size``) accepted."""


def check_limit(limit: object, field: str = "limit") -> int:
    """An int from 1 to :data:`MAX_LIMIT`, or ValidationError(field)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(field, f"must be an integer from 1 to {MAX_LIMIT}")
    return limit


def check_unit(value: object, field: str) -> float:
    """A number in 0..1, or ValidationError(field)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, "must be a number between 0 and 1")
    if not 0.0 <= float(value) <= 1.0:
        raise ValidationError(field, "must be between 0 and 1")
    return float(value)


def check_query(query: object) -> str:
    """A str that can be searched (no lone surrogates), or ValidationError('query')."""
    return check_text(query, "query")


def check_id(memory_id: object) -> str:
    """A memory id argument: a storable string (unknown ids are the caller's None/False)."""
    return check_text(memory_id, "memory_id")


def parse_type(value: object, field: str = "type") -> MemoryType:
    """A MemoryType, or ValidationError(field)."""
    try:
        return MemoryType(str(value)) if not isinstance(value, MemoryType) else value
    except ValueError:
        raise ValidationError(field, f"unknown memory type {value!r}") from None


def parse_input(entry: object) -> tuple[MemoryInput, FloatMatrix | None]:
    """Validate one input; its vector is checked with numpy, not element by element.

    Same rules as ``MemoryInput`` (finite, non-zero, at most 4096 values), same
    ``ValidationError('embedding')``, about 50× faster for a 384-dim vector.
    """
    if isinstance(entry, MemoryInput):
        data: Any = entry.model_dump(exclude_unset=True)
    elif isinstance(entry, Mapping):
        data = dict(entry)
    else:
        return parse(MemoryInput, entry), None  # type: ignore[arg-type]  # refused by parse
    raw = data.pop("embedding", None)
    item = parse(MemoryInput, data)
    return item, None if raw is None else check_vector(raw, None, "embedding")
