"""Base model, field types and the one place pydantic errors become Jetpack errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from jetpack.shared.errors import ValidationError

__all__ = [
    "ID_PATTERN",
    "MAX_LIST_ITEMS",
    "MAX_METADATA_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "Identifier",
    "JetpackModel",
    "JsonObject",
    "UtcDatetime",
    "parse",
]

MAX_TITLE_CHARS = 500
"""Longest task title accepted."""
MAX_TEXT_CHARS = 200_000
"""Longest free text (description, memory content, error) accepted."""
MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest message payload, as compact JSON, accepted by every mail bus."""
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata object, as compact JSON, accepted on tasks and memories."""
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


def _json_size_limited(limit: int) -> AfterValidator:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        try:
            encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be JSON-serialisable ({exc})") from exc
        if len(encoded.encode()) > limit:
            raise ValueError(f"is larger than {limit} bytes as JSON")
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
