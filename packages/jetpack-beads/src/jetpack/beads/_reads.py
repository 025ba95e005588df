"""Read jobs: plain functions of a ``sqlite3`` connection, each run in one snapshot.

The store runs them with ``await db.read(job, ...)`` on a reader thread; the
small lookups (:func:`get`, :func:`existing_ids`, :func:`statuses`) also serve
inside write jobs. The SQL is that of :mod:`jetpack.beads._sql`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._rows import dump_json, row_to_task
from jetpack.shared import Task, TaskPriority, TaskStats, TaskStatus

__all__ = ["existing_ids", "get", "stats", "statuses", "tasks"]

_STATUS = {s.value: s for s in TaskStatus}


def get(conn: sqlite3.Connection, task_id: str) -> Task | None:
    """The stored task, or None."""
    row = conn.execute(_sql.SELECT_TASK, {"id": task_id}).fetchone()
    return None if row is None else row_to_task(row)


def tasks(conn: sqlite3.Connection, statement: str, params: Mapping[str, Any]) -> list[Task]:
    """The tasks a query of :mod:`~jetpack.beads._sql` selects, in its order."""
    return [row_to_task(row) for row in conn.execute(statement, params).fetchall()]


def existing_ids(conn: sqlite3.Connection, ids: Collection[str]) -> set[str]:
    """Which of ``ids`` exist, in one query."""
    if not ids:
        return set()
    rows = conn.execute(_sql.EXISTING_IDS, {"ids": dump_json(sorted(ids))})
    return {row[0] for row in rows}


def statuses(conn: sqlite3.Connection, ids: Collection[str]) -> dict[str, TaskStatus]:
    """The stored status of each of ``ids`` that exists, in one query."""
    if not ids:
        return {}
    rows = conn.execute(_sql.STATUSES_IN, {"ids": dump_json(sorted(ids))})
    return {task_id: _STATUS[status] for task_id, status in rows}


def stats(conn: sqlite3.Connection, now_ms: int) -> TaskStats:
    """Counts by status and priority, the ready count, mean completion time."""
    by_status = dict.fromkeys(TaskStatus, 0)
    for status, count in conn.execute(_sql.COUNT_BY_STATUS):
        by_status[TaskStatus(status)] = count
    by_priority = dict.fromkeys(TaskPriority, 0)
    for priority, count in conn.execute(_sql.COUNT_BY_PRIORITY):
        by_priority[TaskPriority(priority)] = count
    ready = conn.execute(_sql.READY_COUNT, {"now": now_ms}).fetchone()[0]
    mean = conn.execute(_sql.MEAN_COMPLETION).fetchone()[0]
    return TaskStats(
        total=sum(by_status.values()),
        by_status=by_status,
        by_priority=by_priority,
        ready=ready,
        avg_completion_minutes=None if mean is None else float(mean),
    )
