"""Graph edits (create, import, update, delete) as whole write transactions.

Like :mod:`jetpack.beads._claims`, each function takes the writer thread's
``sqlite3`` connection and runs inside the ``BEGIN IMMEDIATE`` transaction
that :class:`~jetpack.beads._writer.Writer` opens for it. Statuses follow the
shared dependency rules (:mod:`jetpack.beads._settle`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._graph import check_dependencies, existing_ids, get, run, set_columns
from jetpack.beads._import import check_graph, insert_tasks, new_tasks
from jetpack.beads._rows import dump_json, task_to_params
from jetpack.beads._settle import Graph, after_status_change, resettle_tasks
from jetpack.shared import OPEN_STATUSES, Task, TaskInput, utcnow
from jetpack.shared.errors import ConflictError, NotFoundError
from jetpack.shared.rules import check_imported, resettle, status_change

__all__ = ["create", "delete", "import_whole", "update"]


def create(conn: sqlite3.Connection, inputs: Sequence[TaskInput]) -> list[Task]:
    """Insert validated inputs: ids checked or drawn, dependencies checked, statuses placed."""
    created = new_tasks(conn, inputs, utcnow())
    insert_tasks(conn, created)
    return created


def import_whole(conn: sqlite3.Connection, tasks: Sequence[Task], replace: bool) -> int:
    """Write whole tasks as given; an existing id is a conflict unless ``replace``.

    Then waiting tasks of the batch, and stored dependants of batch tasks, are
    placed by the dependency rules (batch tasks keep their version and updated_at).
    """
    for task in tasks:
        check_imported(task)
    if not replace:
        taken = existing_ids(conn, [task.id for task in tasks])
        if taken:
            raise ConflictError(f"task {sorted(taken)[0]!r} already exists")
    check_graph(conn, tasks, upsert=replace)
    insert_tasks(conn, tasks, upsert=replace)
    graph = Graph(conn, utcnow())
    batch = {task.id: task for task in tasks}
    graph.tasks.update(batch)
    touched = list(batch)
    rows = run(conn, _sql.DEPENDANTS_EDGES_OF, {"ids": dump_json(list(batch))})
    touched.extend(child for (child,) in rows)
    outside = [task_id for task_id in touched if task_id not in batch]
    resettle_tasks(graph, touched, bump_ids=set(outside))
    return len(tasks)


def update(conn: sqlite3.Connection, task_id: str, changes: dict[str, Any]) -> Task:
    """Apply already validated field values; bumps ``version`` and ``updated_at``.

    A status change keeps the claim invariants (``rules.status_change``); a
    waiting task is placed by the dependency rules; dependants follow.
    """
    task = get(conn, task_id)
    if task is None:
        raise NotFoundError("task", task_id)
    if "dependencies" in changes:
        changes["dependencies"] = list(dict.fromkeys(changes["dependencies"]))
        check_dependencies(conn, task_id, changes["dependencies"])
    now = utcnow()
    if "status" in changes:
        changes.update(status_change(task, changes["status"], now))
    graph = Graph(conn, now)
    new = task.model_copy(update=changes)
    if new.status in OPEN_STATUSES:
        graph.prefetch([new])
        status, blockers = resettle(new, graph.status_of)
        changes.update(status=status, blockers=blockers)
        new = new.model_copy(update=changes)
    changes["updated_at"] = now
    params = task_to_params(new.model_copy(update={"updated_at": now}))
    updated = set_columns(conn, task_id, {name: params[name] for name in changes})
    if "dependencies" in changes:
        run(conn, _sql.DELETE_DEPS, {"id": task_id})
        deps = [{"task_id": task_id, "depends_on": d} for d in changes["dependencies"]]
        if deps:
            run(conn, _sql.INSERT_DEP, deps)
    graph.tasks[task_id] = updated
    after_status_change(graph, task, updated)
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
