"""Base model, field types and the one place pydantic errors become Jetpack errors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from jetpack.shared.errors import ValidationError

__all__ = [
    "ID_PATTERN",
    "MAX_JSON_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_METADATA_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "Identifier",
    "JetpackModel",
    "JsonObject",
    "UtcDatetime",
    "json_problem",
    "parse",
    "text_problem",
]

MAX_TITLE_CHARS = 500
"""Longest task title accepted."""
MAX_TEXT_CHARS = 200_000
"""Longest free text (description, memory content, error) accepted."""
MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest message payload, as compact JSON, accepted by every mail bus."""
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata object, as compact JSON, accepted on tasks and memories."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and lists accepted in metadata, payloads and results."""
MAX_LIST_ITEMS = 1_000
"""Most items in one list field (dependencies, tags, skills...)."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
"""Caller-supplied ids: 1-128 characters, no spaces, starting alphanumeric."""

M = TypeVar("M", bound=BaseModel)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are refused."""

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""An id: task, memory, message or agent."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as UTF-8 text (a lone surrogate), or None."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode text (lone surrogate at position {exc.start})"
    return None


def json_problem(value: object, limit: int | None = None) -> str | None:
    """Why ``value`` is not a storable JSON value, or None.

    Refused: nesting deeper than :data:`MAX_JSON_DEPTH`, keys that are not
    strings, text with lone surrogates, NaN and infinities, values JSON has no
    type for, and more than ``limit`` bytes as compact JSON. The walk is
    iterative, so any depth gets an answer instead of a RecursionError.
    """
    stack: list[tuple[object, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{where or 'value'} {problem}"
        elif isinstance(item, Mapping | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return f"nests objects and lists deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"key {key!r} at {where or 'top level'} is not a string"
                    problem = text_problem(key)
                    if problem:
                        return f"a key at {where or 'top level'} {problem}"
                    stack.append((child, depth + 1, f"{where}.{key}" if where else key))
            else:
                for i, child in enumerate(item):
                    stack.append((child, depth + 1, f"{where}[{i}]"))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where or 'value'} is not a finite number"
        elif item is not None and not isinstance(item, bool | int):
            return f"{where or 'value'} is a {type(item).__name__}, which JSON cannot hold"
    if limit is not None:
        encoded = json.dumps(value, separators=(",", ":"))
        if len(encoded) > limit:
            return f"is larger than {limit} bytes as JSON"
    return None


def _json_size_limited(limit: int) -> AfterValidator:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        problem = json_problem(value, limit)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


JsonObject = Annotated[dict[str, Any], _json_size_limited(MAX_METADATA_BYTES)]
"""A JSON object of at most :data:`MAX_METADATA_BYTES`."""
PayloadObject = Annotated[dict[str, Any], _json_size_limited(MAX_PAYLOAD_BYTES)]
"""A JSON object of at most :data:`MAX_PAYLOAD_BYTES`."""


class JetpackModel(BaseModel):
    """Base of every Jetpack model: unknown fields are refused, enums kept as enums."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


def parse(model: type[M], data: M | Mapping[str, Any]) -> M:
    """Validate ``data`` as ``model``; raise :class:`ValidationError` naming the field.

    An instance of ``model`` is re-validated too, so values assigned after
    construction cannot slip past the rules.
    """
    raw: Any = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else data
    if not isinstance(raw, Mapping):
        raise ValidationError(model.__name__, f"expected an object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, model.__name__) from exc


def from_pydantic(exc: pydantic.ValidationError, default_field: str) -> ValidationError:
    """Turn pydantic's first error into a :class:`ValidationError` naming the field."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    return ValidationError(loc or default_field, message)
