"""Tool specs, their hand-written JSON schemas, and a checker for the arguments.

The schemas are the single source of truth: what ``tools/list`` advertises
(:func:`advertised`: the schema without its size limits) is what
:func:`check_args` enforces, so a model that ignores the schema gets a
tool error naming the field (``ValidationError``), never a half-done write.
Only the small JSON Schema subset the tools use is supported: ``type``
(object, string, integer, number, boolean, array), ``enum``, ``required``,
``additionalProperties: false``, ``minimum``/``maximum``, ``minLength``/``maxLength``,
``maxItems`` and array ``items``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jetpack.shared.errors import ValidationError

if TYPE_CHECKING:
    from jetpack.cli.mcp._context import ToolContext

__all__ = ["SAFETY_KEYWORDS", "ToolHandler", "ToolSpec", "advertised", "check_args", "obj"]

ToolHandler = Callable[["ToolContext", dict[str, Any]], Awaitable[Any]]
"""``(context, checked arguments) -> JSON-able result`` (a string is sent as is)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One MCP tool: name, one-line description, input schema and handler."""

    name: str
    description: str
    schema: dict[str, Any]
    handler: ToolHandler


SAFETY_KEYWORDS = frozenset({"minLength", "maxLength", "maxItems", "minItems"})
"""Size limits enforced by :func:`check_args` but left out of ``tools/list``.

They guard the stores against runaway input; they tell a model nothing it
needs to choose a call, and spelled out on every string they cost ~25% of
the listing.
"""


def advertised(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` as listed to clients: the same, minus :data:`SAFETY_KEYWORDS`."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SAFETY_KEYWORDS:
            continue
        if key == "properties":
            value = {name: advertised(prop) for name, prop in value.items()}
        elif key == "items":
            value = advertised(value)
        out[key] = value
    return out


def obj(required: list[str] | None = None, **properties: dict[str, Any]) -> dict[str, Any]:
    """A closed object schema with these properties."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def check_args(schema: Mapping[str, Any], args: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``args`` against an object ``schema``; return them as a fresh dict.

    Raises :class:`ValidationError` naming the first offending field.
    """
    value = {} if args is None else args
    _check(schema, value, "arguments")
    return dict(value)


def _check(schema: Mapping[str, Any], value: Any, field: str) -> None:
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _PY_TYPES[kind])
        if kind in ("integer", "number") and isinstance(value, bool):
            ok = False
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            raise ValidationError(field, f"must be {_article(kind)} {kind}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        raise ValidationError(field, f"must be one of {allowed}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise ValidationError(field, "must not be empty")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ValidationError(field, f"is longer than {schema['maxLength']} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ValidationError(field, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ValidationError(field, f"must be at most {schema['maximum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValidationError(field, f"has more than {schema['maxItems']} items")
        if len(value) < schema.get("minItems", 0):
            raise ValidationError(field, f"needs at least {schema['minItems']} item(s)")
        items = schema.get("items")
        if items:
            for i, item in enumerate(value):
                _check(items, item, f"{field}[{i}]")
    if isinstance(value, dict) and kind == "object" and "properties" in schema:
        props: Mapping[str, Any] = schema["properties"]
        prefix = "" if field == "arguments" else f"{field}."
        for name in schema.get("required", ()):
            if value.get(name) is None:
                raise ValidationError(f"{prefix}{name}", "is required")
        for name, item in value.items():
            if name not in props:
                if schema.get("additionalProperties", True) is False:
                    known = ", ".join(props)
                    raise ValidationError(f"{prefix}{name}", f"unknown argument (known: {known})")
                continue
            if item is not None:
                _check(props[name], item, f"{prefix}{name}")


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"
