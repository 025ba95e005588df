"""Checks of the plain arguments (not models) that store methods take.

Each raises :class:`~jetpack.shared.errors.ValidationError` naming the argument,
before anything touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jetpack.shared import MAX_METADATA_BYTES, MAX_TEXT_CHARS, FailureType
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import check_agent_id, check_json_object, check_text, check_ttl

__all__ = [
    "check_agent_id",
    "check_error",
    "check_failure_type",
    "check_limit",
    "check_minutes",
    "check_result",
    "check_skills",
    "check_task_id",
    "check_ttl",
]


def check_task_id(task_id: object, field: str = "task_id") -> str:
    """A task id must be a storable string (unknown ids are the caller's NotFound/None)."""
    if not isinstance(task_id, str) or not task_id:
        raise ValidationError(field, "must be a non-empty string")
    return check_text(task_id, field)


def check_limit(limit: object, field: str = "limit") -> int:
    """``None`` → -1 (no limit, as SQLite spells it); otherwise an integer >= 0."""
    if limit is None:
        return -1
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValidationError(field, "must be a non-negative integer or None")
    return limit


def check_skills(skills: object, field: str = "skills") -> list[str] | None:
    """``None`` (any task) or a sequence of non-empty strings; a bare string is refused."""
    if skills is None:
        return None
    if isinstance(skills, str | bytes) or not isinstance(skills, Sequence | set | frozenset):
        raise ValidationError(field, "must be a list of skill names or None")
    out = list(skills)
    if not all(isinstance(s, str) and s for s in out):
        raise ValidationError(field, "every skill must be a non-empty string")
    for skill in out:
        check_text(skill, field)
    return out


def check_minutes(minutes: object, field: str = "actual_minutes") -> int | None:
    """Whole minutes, 0..10,000,000, or None."""
    if minutes is None:
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= 10_000_000:
        raise ValidationError(field, "must be an integer between 0 and 10000000")
    return minutes


def check_error(error: object, field: str = "error") -> str:
    """An error text of at most ``MAX_TEXT_CHARS``."""
    error = check_text(error, field)
    if len(error) > MAX_TEXT_CHARS:
        raise ValidationError(field, f"is longer than {MAX_TEXT_CHARS} characters")
    return error


def check_failure_type(kind: object, field: str = "failure_type") -> FailureType:
    """One of :class:`~jetpack.shared.FailureType`."""
    allowed = ", ".join(f.value for f in FailureType)
    if not isinstance(kind, str):
        raise ValidationError(field, f"must be one of {allowed}")
    try:
        return FailureType(kind)
    except ValueError as exc:
        raise ValidationError(field, f"must be one of {allowed}") from exc


def check_result(
    result: object, metadata: Mapping[str, Any], field: str = "result"
) -> dict[str, Any]:
    """Merge ``result`` into ``metadata["result"]``; the whole must stay a small JSON object."""
    merged = dict(metadata)
    if result is None:
        return merged
    merged["result"] = check_json_object(result, field)
    return check_json_object(merged, field, MAX_METADATA_BYTES)
