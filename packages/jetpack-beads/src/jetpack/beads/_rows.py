"""Rows <-> :class:`~jetpack.shared.Task`: JSON arrays as TEXT, times as epoch ms.

Rows are only ever written from validated models, so reading builds tasks
without re-validation (:func:`build_task`), skips the JSON decoder for empty
arrays and pauses the cycle collector during a big read
(:func:`collector_paused`): that keeps ``get_ready_tasks`` on a big queue cheap.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from jetpack.beads._sql import COLUMNS
from jetpack.shared import FailureType, Task, TaskPriority, TaskStatus, to_ms

__all__ = [
    "build_task",
    "collector_paused",
    "dump_json",
    "ms",
    "row_to_task",
    "task_to_params",
]

_LISTS = ("dependencies", "blockers", "required_skills", "tags", "target_branches")
_TIMES = (
    "last_attempt_at",
    "created_at",
    "updated_at",
    "completed_at",
    "not_before",
    "claim_expires_at",
)


def dump_json(value: Any) -> str:
    """Compact JSON, as stored."""
    if not value:
        if value == []:
            return "[]"
        if value == {}:
            return "{}"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_FIELDS_SET = set(Task.model_fields)


def build_task(values: dict[str, Any]) -> Task:
    """A :class:`Task` from already valid values for every field, without re-validation.

    What ``Task.model_construct`` does, minus its per-field default handling,
    which dominated the cost of reading large result sets.
    """
    task = Task.__new__(Task)
    object.__setattr__(task, "__dict__", values)
    # Every field is set, so all tasks can share one fields-set: pydantic copies
    # it on model_copy and only ever adds names that are already in it.
    object.__setattr__(task, "__pydantic_fields_set__", _FIELDS_SET)
    object.__setattr__(task, "__pydantic_extra__", None)
    object.__setattr__(task, "__pydantic_private__", None)
    return task


def ms(value: datetime | None) -> int | None:
    """Epoch milliseconds, or None."""
    return None if value is None else to_ms(value)


def task_to_params(task: Task) -> dict[str, Any]:
    """Bind parameters of :data:`~jetpack.beads._sql.INSERT_TASK` for ``task``."""
    params: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(task, name)
        if name in _LISTS:
            value = dump_json(list(value))
        elif name in _TIMES:
            value = ms(value)
        elif name == "metadata":
            value = dump_json(value)
        elif name in ("status", "priority", "failure_type") and value is not None:
            value = str(value.value if hasattr(value, "value") else value)
        params[name] = value
    return params


_STATUS = {s.value: s for s in TaskStatus}
_PRIORITY = {p.value: p for p in TaskPriority}
_FAILURE = {f.value: f for f in FailureType}


def _list(raw: str | None) -> list[str]:
    # Most arrays are empty: skip the JSON decoder for them (a third of a read).
    if not raw or raw == "[]":
        return []
    result: list[str] = json.loads(raw)
    return result


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(raw: int | None) -> datetime | None:
    # jetpack.shared.from_ms, with the epoch built once.
    return None if raw is None else _EPOCH + timedelta(milliseconds=raw)


def row_to_task(row: Sequence[Any]) -> Task:
    """Build a task from a row selected as :data:`~jetpack.beads._sql.COLUMNS`."""
    (
        id_,
        title,
        description,
        status,
        priority,
        dependencies,
        blockers,
        required_skills,
        estimated_minutes,
        actual_minutes,
        tags,
        retry_count,
        max_retries,
        branch,
        origin_branch,
        target_branches,
        assigned_agent,
        last_error,
        failure_type,
        last_attempt_at,
        created_at,
        updated_at,
        completed_at,
        metadata,
        not_before,
        claim_expires_at,
        version,
    ) = row
    return build_task(
        dict(
            id=id_,
            title=title,
            description=description,
            status=_STATUS[status],
            priority=_PRIORITY[priority],
            dependencies=_list(dependencies),
            blockers=_list(blockers),
            required_skills=_list(required_skills),
            estimated_minutes=estimated_minutes,
            actual_minutes=actual_minutes,
            tags=_list(tags),
            retry_count=retry_count or 0,
            max_retries=2 if max_retries is None else max_retries,
            branch=branch,
            origin_branch=origin_branch,
            target_branches=_list(target_branches),
            assigned_agent=assigned_agent,
            last_error=last_error,
            failure_type=None if failure_type is None else _FAILURE[failure_type],
            last_attempt_at=_time(last_attempt_at),
            created_at=_EPOCH + timedelta(milliseconds=created_at),
            updated_at=_EPOCH + timedelta(milliseconds=updated_at),
            completed_at=_time(completed_at),
            metadata=json.loads(metadata) if metadata and metadata != "{}" else {},
            not_before=_time(not_before),
            claim_expires_at=_time(claim_expires_at),
            version=version or 1,
        )
    )


_pause_lock = threading.Lock()
_pauses = 0


@contextmanager
def collector_paused(pause: bool = True) -> Iterator[None]:
    """Pause the cycle collector around a big read (fetch and row building).

    Every task holds a handful of new containers (its dict, its lists), and
    the driver builds a tuple per row: reading thousands of rows triggers
    collections that walk the growing result again and again, which cost
    more than the rows themselves. The objects built reference no cycles, so
    nothing is lost by pausing for the few milliseconds of a read. Nested and
    concurrent pauses are counted; a collector that someone else disabled is
    left alone.
    """
    global _pauses
    with _pause_lock:
        pause = pause and (_pauses > 0 or gc.isenabled())
        if pause:
            _pauses += 1
            gc.disable()
    try:
        yield
    finally:
        if pause:
            with _pause_lock:
                _pauses -= 1
                if _pauses == 0:
                    gc.enable()
