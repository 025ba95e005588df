"""Dependency-graph work inside a write transaction (on the writer thread).

The graph walks themselves are the shared pure rules (``find_cycle``,
``dependants_closure``); this module only fetches the part of the graph they
need with one recursive query and applies their answer.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._rows import dump_json, row_to_task
from jetpack.shared import Task
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.rules import find_cycle

__all__ = ["check_dependencies", "existing_ids", "get", "run", "set_columns"]


def run(
    conn: sqlite3.Connection,
    statement: str,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> sqlite3.Cursor:
    """Run one statement (a list of parameter sets runs it as executemany)."""
    if isinstance(params, Sequence):
        return conn.executemany(statement, params)
    return conn.execute(statement, params)


def get(conn: sqlite3.Connection, task_id: str) -> Task | None:
    """The stored task, or None."""
    row = conn.execute(_sql.SELECT_TASK, {"id": task_id}).fetchone()
    return None if row is None else row_to_task(row)


def set_columns(conn: sqlite3.Connection, task_id: str, columns: Mapping[str, Any]) -> Task:
    """Write already-encoded column values (bumping ``version``); the row as stored."""
    row = conn.execute(_sql.update_sql(columns), {**columns, "id": task_id}).fetchone()
    return row_to_task(row)


def existing_ids(conn: sqlite3.Connection, ids: Collection[str]) -> set[str]:
    """Which of ``ids`` exist, in one query."""
    if not ids:
        return set()
    result = run(conn, _sql.EXISTING_IDS, {"ids": dump_json(sorted(ids))})
    return {row[0] for row in result}


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
