"""Write jobs: each a plain function of the writer thread's ``sqlite3`` connection.

The store runs each with ``await db.write(job, ...)``: one ``BEGIN IMMEDIATE``
transaction under the file lock (:class:`jetpack.shared.sqlite.Database`),
committed when the job returns, rolled back when it raises. ``now`` is read
inside, once the write lock is held, so claim times never go backwards across
processes. Statuses follow the shared dependency rules (:mod:`jetpack.beads._settle`).

- graph edits: :func:`create`, :func:`import_whole`, :func:`update`, :func:`delete`;
- the claim lifecycle: :class:`Claims` (claim, renew, start, release, complete,
  fail and the lapsed-claim sweep), which keeps the sweep clock of one store.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._checks import check_result
from jetpack.beads._graph import (
    check_dependencies,
    check_graph,
    insert_tasks,
    new_tasks,
    run,
    set_columns,
)
from jetpack.beads._reads import existing_ids, get
from jetpack.beads._rows import dump_json, ms, row_to_task, task_to_params
from jetpack.beads._settle import (
    Graph,
    after_status_change,
    block_closure,
    promote_dependants,
    rebase,
    resettle_one,
    resettle_tasks,
)
from jetpack.shared import (
    HELD_STATUSES,
    OPEN_STATUSES,
    FailureType,
    Task,
    TaskInput,
    TaskStatus,
    utcnow,
)
from jetpack.shared.errors import ConflictError, NotFoundError
from jetpack.shared.rules import check_imported, next_after_failure, resettle, status_change
from jetpack.shared.sqlite import KeepChanges

__all__ = ["Claims", "create", "delete", "import_whole", "update"]

logger = logging.getLogger(__name__)

_FAILURE_COLUMNS = (
    "status",
    "retry_count",
    "not_before",
    "last_error",
    "failure_type",
    "assigned_agent",
    "claim_expires_at",
    "updated_at",
)


def _lapsed(task: Task, now: datetime) -> bool:
    expires = ms(task.claim_expires_at)
    return expires is not None and expires <= (ms(now) or 0)


def create(conn: sqlite3.Connection, inputs: Sequence[TaskInput]) -> list[Task]:
    """Insert validated inputs: ids checked or drawn, dependencies checked, statuses placed."""
    created = new_tasks(conn, inputs, utcnow())
    insert_tasks(conn, created)
    return created


def import_whole(conn: sqlite3.Connection, tasks: Sequence[Task], replace: bool) -> int:
    """Write whole tasks as given; an existing id is a conflict unless ``replace``.

    Then waiting tasks of the batch, and stored dependants of batch tasks, are
    placed by the dependency rules (batch tasks keep their version and updated_at);
    a replace drops the blockers its new edges made stale (``rules.plan_rebase``).
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
    if replace:  # edges of stored tasks were replaced
        rebase(graph, touched, bump_ids=set(outside))
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
    if "dependencies" in changes:
        rebase(graph, [task_id, *graph.dependants_closure(task_id)])
    return graph.tasks[task_id]


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


class Claims:
    """Claim, renew, start, release, complete, fail and the lapsed-claim sweep.

    Holds the sweep clock of one adapter; only ever used from the writer
    thread, one job at a time.
    """

    def __init__(self, *, retry_base_ms: int, recovery_interval_ms: int) -> None:
        self.retry_base_ms = retry_base_ms
        self.recovery_interval_ms = recovery_interval_ms
        self.next_sweep_ms = 0

    # -- claims -----------------------------------------------------------------

    def _claim(
        self, conn: sqlite3.Connection, statement: str, params: dict[str, Any], ttl: int
    ) -> Task | None:
        """Run a claim statement; sweep lapsed claims when due or when it finds nothing.

        Under load a lapsed claim is requeued within ``recovery_interval_ms`` of
        its expiry instead of costing one more query per claim; a claim that
        finds nothing always sweeps, so a lapsed claim is never missed.
        """
        now = utcnow()
        now_ms = ms(now) or 0
        params.update(now=now_ms, expires=now_ms + ttl)
        swept = now_ms >= self.next_sweep_ms
        if swept:
            self._recover(conn, now)
        row = conn.execute(statement, params).fetchone()
        if row is None and not swept and self._recover(conn, now):
            row = conn.execute(statement, params).fetchone()
        return None if row is None else row_to_task(row)

    def claim_next(
        self, conn: sqlite3.Connection, agent_id: str, ttl: int, skills: str | None
    ) -> Task | None:
        """Claim the best ready task the agent can do (``skills``: JSON array or None)."""
        params: dict[str, Any] = {"agent": agent_id, "skills": skills}
        return self._claim(conn, _sql.CLAIM_NEXT, params, ttl)

    def claim_task(
        self, conn: sqlite3.Connection, task_id: str, agent_id: str, ttl: int
    ) -> Task | None:
        """Claim one named task if it is ready; NotFoundError if it does not exist."""
        params: dict[str, Any] = {"agent": agent_id, "id": task_id}
        task = self._claim(conn, _sql.CLAIM_ONE, params, ttl)
        if task is None and get(conn, task_id) is None:
            raise NotFoundError("task", task_id)
        return task

    def renew(self, conn: sqlite3.Connection, task_id: str, agent_id: str, ttl: int) -> Task:
        """Extend the holder's claim (a lapsed one is lost: see :meth:`_held`)."""
        now = utcnow()
        task = self._held(conn, task_id, agent_id, now)
        now_ms = ms(now) or 0
        return set_columns(conn, task.id, {"claim_expires_at": now_ms + ttl, "updated_at": now_ms})

    # -- holder's moves -----------------------------------------------------------

    def start(self, conn: sqlite3.Connection, task_id: str, agent_id: str) -> Task:
        """Mark a held task in progress."""
        now = utcnow()
        task = self._held(conn, task_id, agent_id, now)
        changes = {"status": TaskStatus.IN_PROGRESS.value, "updated_at": ms(now)}
        return set_columns(conn, task.id, changes)

    def release(self, conn: sqlite3.Connection, task_id: str, agent_id: str) -> bool:
        """Give a held task back; False unless ``agent_id`` holds it (a lapsed claim: swept)."""
        task = get(conn, task_id)
        if task is None or task.status not in HELD_STATUSES or task.assigned_agent != agent_id:
            return False
        now = utcnow()
        if _lapsed(task, now):
            self._fail(conn, task, "claim expired", FailureType.STALLED, now, 0)
            return False
        graph = Graph(conn, now)
        back = graph.put(task, status=TaskStatus.READY, assigned_agent=None, claim_expires_at=None)
        resettle_one(graph, back)
        return True

    def complete(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        agent_id: str,
        minutes: int | None,
        result: Mapping[str, Any] | None,
    ) -> Task:
        """Finish a held task: completed_at, actual_minutes; promote ready dependants."""
        now = utcnow()
        task = self._held(conn, task_id, agent_id, now)
        metadata = check_result(result, task.metadata)
        if minutes is None and task.last_attempt_at is not None:
            minutes = int((now - task.last_attempt_at).total_seconds() // 60)
        changes = {
            "status": TaskStatus.COMPLETED.value,
            "completed_at": ms(now),
            "actual_minutes": minutes,
            "claim_expires_at": None,
            "metadata": dump_json(metadata),
            "updated_at": ms(now),
        }
        done = set_columns(conn, task.id, changes)
        promote_dependants(conn, task.id, now)
        return done

    def fail(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        agent_id: str,
        error: str,
        kind: FailureType,
    ) -> Task:
        """Record a failed attempt: back off and retry, or fail and block every dependant."""
        now = utcnow()
        task = self._held(conn, task_id, agent_id, now)
        return self._fail(conn, task, error, kind, now, self.retry_base_ms)

    def recover(self, conn: sqlite3.Connection) -> list[Task]:
        """Return every lapsed claim to the queue now."""
        return self._recover(conn, utcnow())

    # -- internals ----------------------------------------------------------------

    def _held(self, conn: sqlite3.Connection, task_id: str, agent_id: str, now: datetime) -> Task:
        """The task ``agent_id`` holds, or ConflictError.

        A claim past its expiry is lost whether or not a sweep ran: it is swept
        now (back to the queue, one retry used) and that sweep is committed
        before the ConflictError reaches the caller.
        """
        task = get(conn, task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        if task.status not in HELD_STATUSES or task.assigned_agent != agent_id:
            holder = task.assigned_agent if task.status in HELD_STATUSES else None
            raise ConflictError(
                f"task {task_id!r} is not held by {agent_id!r} "
                f"(status {task.status.value}, holder {holder or 'nobody'})"
            )
        if _lapsed(task, now):
            self._fail(conn, task, "claim expired", FailureType.STALLED, now, 0)
            raise KeepChanges(
                ConflictError(
                    f"the claim of {agent_id!r} on {task_id!r} lapsed at "
                    f"{task.claim_expires_at:%H:%M:%S.%f}; the task is back in the queue"
                )
            )
        return task

    @staticmethod
    def _fail(
        conn: sqlite3.Connection,
        task: Task,
        error: str,
        kind: FailureType,
        now: datetime,
        base_ms: int,
    ) -> Task:
        retry = next_after_failure(task, now, base_ms)
        failed = task.model_copy(
            update={
                "status": retry.status,
                "retry_count": retry.retry_count,
                "not_before": retry.not_before,
                "last_error": error,
                "failure_type": kind,
                "assigned_agent": None,
                "claim_expires_at": None,
                "updated_at": now,
            }
        )
        params = task_to_params(failed)
        stored = set_columns(conn, task.id, {name: params[name] for name in _FAILURE_COLUMNS})
        graph = Graph(conn, now)
        if retry.status is TaskStatus.FAILED:
            block_closure(graph, stored)
            return stored
        return resettle_one(graph, stored)

    def _recover(self, conn: sqlite3.Connection, now: datetime) -> list[Task]:
        self.next_sweep_ms = (ms(now) or 0) + self.recovery_interval_ms
        expired = [row_to_task(row) for row in conn.execute(_sql.EXPIRED_CLAIMS, {"now": ms(now)})]
        recovered = []
        for task in expired:
            logger.info("claim of %s by %s expired", task.id, task.assigned_agent)
            recovered.append(self._fail(conn, task, "claim expired", FailureType.STALLED, now, 0))
        return recovered
