"""The dependency rules of :mod:`jetpack.shared.rules` applied inside a write transaction.

A dependant of a failed or blocked task is blocked, naming it; a waiting task is
stored ``ready`` or ``pending`` by readiness; a reopened task puts what it
blocked back in the queue. The decisions are the shared pure rules
(``resettle``, ``plan_block``, ``topological_order``); this module fetches the
part of the graph they need and writes their answer, on the writer thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._graph import set_columns
from jetpack.beads._reads import statuses
from jetpack.beads._rows import dump_json, ms, row_to_task, task_to_params
from jetpack.shared import Task, TaskStatus
from jetpack.shared.rules import (
    blocker_for,
    blocker_names,
    dependants_closure,
    plan_block,
    plan_rebase,
    resettle,
    topological_order,
)

__all__ = [
    "Graph",
    "after_status_change",
    "block_closure",
    "promote_dependants",
    "rebase",
    "resettle_one",
    "resettle_tasks",
]

logger = logging.getLogger(__name__)

_BLOCKING = (TaskStatus.FAILED, TaskStatus.BLOCKED)


def referenced(task: Task) -> set[str]:
    """Ids whose status the dependency rules read for ``task``."""
    named = {blocker_names(b) for b in task.blockers}
    return {*task.dependencies, *(n for n in named if n is not None)}


class Graph:
    """Tasks and statuses fetched for one decision; changes are written back by :meth:`put`."""

    def __init__(self, conn: sqlite3.Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.tasks: dict[str, Task] = {}
        self._status: dict[str, TaskStatus | None] = {}

    def load(self, ids: Iterable[str]) -> None:
        """Fetch whole tasks (and later the statuses they refer to)."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self.tasks]
        if wanted:
            rows = self.conn.execute(_sql.SELECT_TASKS_IN, {"ids": dump_json(wanted)})
            for task in map(row_to_task, rows):
                self.tasks[task.id] = task

    def status_of(self, task_id: str) -> TaskStatus | None:
        task = self.tasks.get(task_id)
        if task is not None:
            return task.status
        if task_id not in self._status:
            self._status[task_id] = statuses(self.conn, [task_id]).get(task_id)
        return self._status[task_id]

    def prefetch(self, tasks: Iterable[Task]) -> None:
        """Read the statuses of everything ``tasks`` refer to, in one query."""
        wanted = {i for t in tasks for i in referenced(t)} - self.tasks.keys() - self._status.keys()
        found = statuses(self.conn, wanted)
        self._status.update({i: found.get(i) for i in wanted})

    def put(self, task: Task, bump: bool = True, **changes: Any) -> Task:
        """Write ``changes`` (model values) to ``task``; ``bump``: version and updated_at too."""
        if bump:
            changes["updated_at"] = self.now
        updated = task.model_copy(update=changes)
        params = task_to_params(updated)
        columns = {name: params[name] for name in changes}
        if bump:
            stored = set_columns(self.conn, task.id, columns)
        else:
            sets = ", ".join(f"{c} = :{c}" for c in columns)
            self.conn.execute(f"UPDATE tasks SET {sets} WHERE id = :id", {**columns, "id": task.id})
            stored = updated
        self.tasks[task.id] = stored
        return stored

    def dependants_closure(self, task_id: str) -> list[str]:
        below: dict[str, list[str]] = defaultdict(list)
        for parent, child in self.conn.execute(_sql.DEPENDANTS_EDGES, {"id": task_id}):
            below[parent].append(child)
        return dependants_closure(task_id, lambda node: below.get(node, ()))

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)


def block_closure(graph: Graph, task: Task) -> list[str]:
    """Block the dependants closure of a failed or blocked ``task``, naming the cause."""
    closure = graph.dependants_closure(task.id)
    if not closure:
        return []
    graph.load(closure)
    label = next((b for b in task.blockers if blocker_names(b)), None)
    label = label or blocker_for(task.id, task.status)
    assert label is not None
    below: dict[str, list[str]] = defaultdict(list)
    for child in closure:
        found = graph.tasks.get(child)
        for dep in found.dependencies if found else ():
            below[dep].append(child)
    changed = []
    for task_id, blockers in plan_block(task.id, label, lambda n: below.get(n, ()), graph.get):
        graph.put(graph.tasks[task_id], status=TaskStatus.BLOCKED, blockers=blockers)
        changed.append(task_id)
    if changed:
        logger.info("task %s is %s; blocked %d dependants", task.id, task.status, len(changed))
    return changed


def resettle_tasks(
    graph: Graph, ids: list[str], *, bump_ids: Collection[str] | None = None
) -> None:
    """Resettle ``ids`` in topological order (``bump_ids``: which get version/updated_at)."""
    graph.load(ids)
    present = [i for i in ids if i in graph.tasks]
    graph.prefetch(graph.tasks[i] for i in present)
    order = topological_order(present, lambda n: graph.tasks[n].dependencies)
    for task_id in order:
        task = graph.tasks[task_id]
        status, blockers = resettle(task, graph.status_of)
        if status is not task.status or blockers != task.blockers:
            bump = bump_ids is None or task_id in bump_ids
            graph.put(task, bump, status=status, blockers=blockers)


def resettle_one(graph: Graph, task: Task) -> Task:
    """Resettle one waiting task and apply what its new status means for its dependants."""
    graph.tasks[task.id] = task
    graph.prefetch([task])
    status, blockers = resettle(task, graph.status_of)
    if status is task.status and blockers == task.blockers:
        return task
    new = graph.put(task, status=status, blockers=blockers)
    after_status_change(graph, task, new)
    return new


def rebase(graph: Graph, ids: list[str], *, bump_ids: Collection[str] | None = None) -> None:
    """After an edit of dependencies: drop the blockers it made stale (``rules.plan_rebase``).

    ``ids`` are the edited tasks and their dependants closure, the edges stored
    already; ``bump_ids`` as for :func:`resettle_tasks`.
    """
    graph.load(ids)
    edges = graph.conn.execute(_sql.DEPENDENCY_EDGES, {"ids": dump_json(ids)}).fetchall()
    graph.prefetch(graph.tasks[i] for i in ids if i in graph.tasks)
    for changed_id, status, blockers in plan_rebase(ids, edges, graph.get, graph.status_of):
        bump = bump_ids is None or changed_id in bump_ids
        graph.put(graph.tasks[changed_id], bump, status=status, blockers=blockers)


def promote_dependants(conn: sqlite3.Connection, task_id: str, now: datetime) -> None:
    """Store ``ready`` every pending dependant of ``task_id`` that nothing else keeps waiting.

    The shared ``resettle`` for the direct dependants of a task that just
    completed, as one statement (the ready rule without the back-off).
    """
    conn.execute(_sql.PROMOTE_DEPENDANTS, {"id": task_id, "now": ms(now)})


def after_status_change(graph: Graph, old: Task, new: Task) -> None:
    """The dependants' side of a status change: block, resettle or promote them."""
    if new.status is old.status:
        return
    if new.status in _BLOCKING:
        block_closure(graph, new)
    elif old.status in _BLOCKING or old.status is TaskStatus.COMPLETED:
        resettle_tasks(graph, graph.dependants_closure(new.id))
    elif new.status is TaskStatus.COMPLETED:
        promote_dependants(graph.conn, new.id, graph.now)
