"""Graph edits (create, import, update, delete) as whole write transactions.

Like :mod:`jetpack.beads._claims`, each function takes the writer thread's
``sqlite3`` connection and runs inside the ``BEGIN IMMEDIATE`` transaction
that :class:`~jetpack.beads._writer.Writer` opens for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._claims import get, set_columns
from jetpack.beads._graph import check_dependencies, existing_ids, run
from jetpack.beads._import import check_graph, insert_tasks, new_tasks
from jetpack.beads._rows import task_to_params
from jetpack.shared import Task, TaskInput, TaskStatus, utcnow
from jetpack.shared.errors import ConflictError, NotFoundError

__all__ = ["create", "delete", "import_whole", "update"]


def create(conn: sqlite3.Connection, inputs: Sequence[TaskInput]) -> list[Task]:
    """Insert validated inputs: ids checked or drawn, dependencies checked."""
    created = new_tasks(conn, inputs, utcnow())
    insert_tasks(conn, created)
    return created


def import_whole(conn: sqlite3.Connection, tasks: Sequence[Task], replace: bool) -> int:
    """Write whole tasks as given; an existing id is a conflict unless ``replace``."""
    if not replace:
        taken = existing_ids(conn, [task.id for task in tasks])
        if taken:
            raise ConflictError(f"task {sorted(taken)[0]!r} already exists")
    check_graph(conn, tasks, upsert=replace)
    insert_tasks(conn, tasks, upsert=replace)
    return len(tasks)


def update(conn: sqlite3.Connection, task_id: str, changes: dict[str, Any]) -> Task:
    """Apply already validated field values; bumps ``version`` and ``updated_at``."""
    task = get(conn, task_id)
    if task is None:
        raise NotFoundError("task", task_id)
    if "dependencies" in changes:
        changes["dependencies"] = list(dict.fromkeys(changes["dependencies"]))
        check_dependencies(conn, task_id, changes["dependencies"])
    now = utcnow()
    if changes.get("status") is TaskStatus.COMPLETED and task.completed_at is None:
        changes["completed_at"] = now
    changes["updated_at"] = now
    params = task_to_params(task.model_copy(update=changes))
    updated = set_columns(conn, task_id, {name: params[name] for name in changes})
    if "dependencies" in changes:
        run(conn, _sql.DELETE_DEPS, {"id": task_id})
        deps = [{"task_id": task_id, "depends_on": d} for d in changes["dependencies"]]
        if deps:
            run(conn, _sql.INSERT_DEP, deps)
    return updated


def delete(conn: sqlite3.Connection, task_id: str) -> bool:
    """Delete a task nobody depends on (else ConflictError); False if it did not exist."""
    if get(conn, task_id) is None:
        return False
    dependants = [row[0] for row in run(conn, _sql.HAS_DEPENDANTS, {"id": task_id})]
    if dependants:
        raise ConflictError(f"task {task_id!r} has dependants: {', '.join(dependants)}")
    run(conn, _sql.DELETE_DEPS, {"id": task_id})
    run(conn, _sql.DELETE_TASK, {"id": task_id})
    return True
