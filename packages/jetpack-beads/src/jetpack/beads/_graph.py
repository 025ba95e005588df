"""The dependency graph inside a write job: new edges checked, new tasks placed, rows written.

The graph walks themselves are the shared pure rules (``find_cycle``,
``resettle``); this module fetches the part of the graph they need with one
query and writes their answer. Every function takes the writer thread's
``sqlite3`` connection, inside the job's ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict, deque
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._reads import existing_ids, statuses
from jetpack.beads._rows import build_task, dump_json, row_to_task, task_to_params
from jetpack.shared import OPEN_STATUSES, Task, TaskInput, TaskStatus
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.rules import find_cycle, new_task_id, resettle

__all__ = [
    "check_dependencies",
    "check_graph",
    "insert_tasks",
    "new_tasks",
    "run",
    "set_columns",
]


_INPUT_FIELDS = tuple(name for name in TaskInput.model_fields if name != "id")
_CREATED_DEFAULTS: dict[str, Any] = {
    name: field.get_default(call_default_factory=True)
    for name, field in Task.model_fields.items()
    if name not in TaskInput.model_fields and name not in ("created_at", "updated_at")
}
"""Values of the task fields a TaskInput does not carry (retry_count 0, version 1, Nones)."""


def run(
    conn: sqlite3.Connection,
    statement: str,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> sqlite3.Cursor:
    """Run one statement (a list of parameter sets runs it as executemany)."""
    if isinstance(params, Sequence):
        return conn.executemany(statement, params)
    return conn.execute(statement, params)


def set_columns(conn: sqlite3.Connection, task_id: str, columns: Mapping[str, Any]) -> Task:
    """Write already-encoded column values (bumping ``version``); the row as stored."""
    row = conn.execute(_sql.update_sql(columns), {**columns, "id": task_id}).fetchone()
    return row_to_task(row)


def check_dependencies(
    conn: sqlite3.Connection,
    task_id: str,
    dependencies: Sequence[str],
    *,
    staged: Collection[str] = (),
    cycles: bool = True,
) -> None:
    """Refuse a self-dependency or a cycle (ConflictError) and an unknown id (ValidationError).

    ``staged`` are ids created earlier in the same batch. A task that did not
    exist before cannot close a cycle, so callers creating tasks pass
    ``cycles=False`` and save the graph walk.
    """
    if task_id in dependencies:
        raise ConflictError(f"task {task_id!r} cannot depend on itself")
    outside = [d for d in dependencies if d not in staged]
    missing = set(outside) - existing_ids(conn, outside)
    if missing:
        raise ValidationError("dependencies", f"unknown task id {sorted(missing)[0]!r}")
    if not cycles or not dependencies:
        return
    result = run(conn, _sql.DEPENDENCY_EDGES, {"ids": dump_json(list(dependencies))})
    edges: dict[str, list[str]] = defaultdict(list)
    for child, parent in result:
        if child != task_id:  # the task's current edges are being replaced
            edges[child].append(parent)
    cycle = find_cycle(task_id, dependencies, lambda node: edges.get(node, ()))
    if cycle:
        raise ConflictError("dependency cycle: " + " -> ".join(cycle))


def new_tasks(conn: sqlite3.Connection, inputs: Sequence[TaskInput], now: datetime) -> list[Task]:
    """Turn validated inputs into tasks: ids checked or generated, dependencies checked.

    An explicit id that exists (or repeats in the batch) is a ConflictError; a
    generated id that collides is drawn again. A dependency must exist already or
    come earlier in the batch. Each task is stored where the dependency rules
    place it (``rules.resettle``: ready, pending, or blocked below a failed task).
    """
    explicit = [item.id for item in inputs if item.id is not None]
    seen: set[str] = set()
    for task_id in explicit:
        if task_id in seen:
            raise ConflictError(f"task {task_id!r} appears twice in the batch")
        seen.add(task_id)
    taken = existing_ids(conn, explicit)
    if taken:
        raise ConflictError(f"task {sorted(taken)[0]!r} already exists")
    ids = [item.id or "" for item in inputs]
    while True:
        fresh = [i for i, task_id in enumerate(ids) if not task_id]
        if not fresh:
            break
        for i in fresh:
            candidate = new_task_id()
            if candidate not in seen:
                ids[i] = candidate
                seen.add(candidate)
        clashes = existing_ids(conn, [ids[i] for i in fresh])
        for i in fresh:
            if ids[i] in clashes:
                ids[i] = ""

    staged: dict[str, TaskStatus] = {}
    tasks = []
    outside = {d for item in inputs for d in item.dependencies} - set(ids)
    known = statuses(conn, outside)

    def status_of(task_id: str) -> TaskStatus | None:
        return staged.get(task_id) or known.get(task_id)

    for task_id, item in zip(ids, inputs, strict=True):
        if item.dependencies:
            check_dependencies(
                conn, task_id, item.dependencies, staged=staged.keys() | known.keys(), cycles=False
            )
        values = {name: getattr(item, name) for name in _INPUT_FIELDS}
        values.update(_CREATED_DEFAULTS)
        values.update(id=task_id, created_at=now, updated_at=now)
        if item.status is TaskStatus.COMPLETED:
            values["completed_at"] = now
        if item.status in OPEN_STATUSES and not item.dependencies and not item.blockers:
            values["status"] = TaskStatus.READY  # what resettle says, without building twice
            task = build_task(values)
        else:
            task = build_task(values)
            status, blockers = resettle(task, status_of)
            if status is not task.status or blockers != task.blockers:
                task = build_task({**values, "status": status, "blockers": blockers})
        staged[task_id] = task.status
        tasks.append(task)
    return tasks


def check_graph(conn: sqlite3.Connection, tasks: Sequence[Task], *, upsert: bool = False) -> None:
    """Check the dependencies of whole tasks written together (any order within the batch).

    Unknown id → ValidationError, self-dependency or cycle → ConflictError. With
    ``upsert`` the stored edges of other tasks take part too (a stored task may
    depend on a batch task that is being replaced).
    """
    batch = {task.id: task for task in tasks}
    referenced = {d for task in tasks for d in task.dependencies} - batch.keys()
    known = existing_ids(conn, referenced)
    for task in tasks:
        for dep in task.dependencies:
            if dep == task.id:
                raise ConflictError(f"task {task.id!r} cannot depend on itself")
            if dep not in batch and dep not in known:
                raise ValidationError("dependencies", f"task {task.id!r}: unknown task id {dep!r}")
    graph: dict[str, list[str]] = {task.id: list(task.dependencies) for task in tasks}
    if upsert:
        for child, parent in run(conn, "SELECT task_id, depends_on FROM task_deps", {}):
            if child not in batch:
                graph.setdefault(child, []).append(parent)
    # Kahn's algorithm finds whether there is a cycle in O(V + E); the shared
    # rule then names one for the error message.
    waiting = {node: len(deps) for node, deps in graph.items()}
    dependants: dict[str, list[str]] = defaultdict(list)
    for node, deps in graph.items():
        for dep in deps:
            dependants[dep].append(node)
            if dep not in graph:
                waiting[node] -= 1
    queue = deque(node for node, count in waiting.items() if count == 0)
    while queue:
        node = queue.popleft()
        for child in dependants.get(node, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                queue.append(child)
    stuck = sorted(node for node, count in waiting.items() if count > 0)
    if stuck:
        cycle = None
        for node in stuck:
            cycle = find_cycle(node, graph[node], lambda n: graph.get(n, ()))
            if cycle:
                break
        raise ConflictError("dependency cycle: " + " -> ".join(cycle or stuck))


def insert_tasks(conn: sqlite3.Connection, tasks: Sequence[Task], *, upsert: bool = False) -> None:
    """Insert rows and dependency edges (``upsert``: replace rows with the same id)."""
    if not tasks:
        return
    run(conn, _sql.UPSERT_TASK if upsert else _sql.INSERT_TASK, [task_to_params(t) for t in tasks])
    if upsert:
        run(conn, _sql.DELETE_DEPS, [{"id": t.id} for t in tasks])
    edges = [{"task_id": t.id, "depends_on": d} for t in tasks for d in t.dependencies]
    if edges:
        run(conn, _sql.INSERT_DEP, edges)
