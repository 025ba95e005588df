"""The claim lifecycle as plain functions of a ``sqlite3`` connection.

Each public method of :class:`Claims` is one whole write transaction that
:class:`~jetpack.beads._writer.Writer` runs on its thread (it sends ``BEGIN
IMMEDIATE`` and ``COMMIT``). ``now`` is read inside, once the write lock is
held, so claim times never go backwards across processes. The SQL is that of
:mod:`jetpack.beads._sql`; failure and dependency rules are the shared ones.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jetpack.beads import _sql
from jetpack.beads._checks import check_result
from jetpack.beads._rows import dump_json, ms, row_to_task, task_to_params
from jetpack.shared import FINAL_STATUSES, HELD_STATUSES, FailureType, Task, TaskStatus, utcnow
from jetpack.shared.errors import ConflictError, NotFoundError
from jetpack.shared.rules import dependants_closure, next_after_failure

__all__ = ["Claims", "block_dependants"]

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


def get(conn: sqlite3.Connection, task_id: str) -> Task | None:
    """The stored task, or None."""
    row = conn.execute(_sql.SELECT_TASK, {"id": task_id}).fetchone()
    return None if row is None else row_to_task(row)


def set_columns(conn: sqlite3.Connection, task_id: str, columns: Mapping[str, Any]) -> Task:
    """Write already-encoded column values (bumping ``version``); the row as stored."""
    row = conn.execute(_sql.update_sql(columns), {**columns, "id": task_id}).fetchone()
    return row_to_task(row)


def block_dependants(conn: sqlite3.Connection, failed_id: str, now: datetime) -> list[str]:
    """Mark every open task depending on ``failed_id`` (transitively) blocked, naming it."""
    below: dict[str, list[str]] = defaultdict(list)
    for parent, child in conn.execute(_sql.DEPENDANTS_EDGES, {"id": failed_id}):
        below[parent].append(child)
    order = dependants_closure(failed_id, lambda node: below.get(node, ()))
    if not order:
        return []
    rows = conn.execute(_sql.SELECT_TASKS_IN, {"ids": dump_json(list(order))})
    tasks = {task.id: task for task in map(row_to_task, rows)}
    blocker = f"dependency {failed_id} failed"
    params: list[dict[str, Any]] = []
    changed: list[str] = []
    for task_id in order:
        task = tasks.get(task_id)
        if task is None or task.status in FINAL_STATUSES:
            continue
        blockers = task.blockers if blocker in task.blockers else [*task.blockers, blocker]
        params.append({"id": task_id, "blockers": dump_json(blockers), "now": ms(now)})
        changed.append(task_id)
    if params:
        conn.executemany(_sql.BLOCK_TASK, params)
    return changed


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
        """Extend the holder's claim."""
        now = utcnow()
        self._recover(conn, now)
        task = self._held(conn, task_id, agent_id)
        now_ms = ms(now) or 0
        return set_columns(conn, task.id, {"claim_expires_at": now_ms + ttl, "updated_at": now_ms})

    # -- holder's moves -----------------------------------------------------------

    def start(self, conn: sqlite3.Connection, task_id: str, agent_id: str) -> Task:
        """Mark a held task in progress."""
        task = self._held(conn, task_id, agent_id)
        changes = {"status": TaskStatus.IN_PROGRESS.value, "updated_at": ms(utcnow())}
        return set_columns(conn, task.id, changes)

    def release(self, conn: sqlite3.Connection, task_id: str, agent_id: str) -> bool:
        """Give a held task back; False unless ``agent_id`` holds it."""
        task = get(conn, task_id)
        if task is None or task.status not in HELD_STATUSES or task.assigned_agent != agent_id:
            return False
        changes = {
            "status": TaskStatus.READY.value,
            "assigned_agent": None,
            "claim_expires_at": None,
            "updated_at": ms(utcnow()),
        }
        set_columns(conn, task.id, changes)
        return True

    def complete(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        agent_id: str,
        minutes: int | None,
        result: Mapping[str, Any] | None,
    ) -> Task:
        """Finish a held task: completed_at, actual_minutes (from the claim if not given)."""
        task = self._held(conn, task_id, agent_id)
        metadata = check_result(result, task.metadata)
        now = utcnow()
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
        return set_columns(conn, task.id, changes)

    def fail(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        agent_id: str,
        error: str,
        kind: FailureType,
    ) -> Task:
        """Record a failed attempt: back off and retry, or fail and block every dependant."""
        task = self._held(conn, task_id, agent_id)
        return self._fail(conn, task, error, kind, utcnow(), self.retry_base_ms)

    def recover(self, conn: sqlite3.Connection) -> list[Task]:
        """Return every lapsed claim to the queue now."""
        return self._recover(conn, utcnow())

    # -- internals ----------------------------------------------------------------

    @staticmethod
    def _held(conn: sqlite3.Connection, task_id: str, agent_id: str) -> Task:
        task = get(conn, task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        if task.status not in HELD_STATUSES or task.assigned_agent != agent_id:
            holder = task.assigned_agent if task.status in HELD_STATUSES else None
            raise ConflictError(
                f"task {task_id!r} is not held by {agent_id!r} "
                f"(status {task.status.value}, holder {holder or 'nobody'})"
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
        if retry.status is TaskStatus.FAILED:
            blocked = block_dependants(conn, task.id, now)
            if blocked:
                logger.info("task %s failed; blocked %d dependants", task.id, len(blocked))
        return stored

    def _recover(self, conn: sqlite3.Connection, now: datetime) -> list[Task]:
        self.next_sweep_ms = (ms(now) or 0) + self.recovery_interval_ms
        expired = [row_to_task(row) for row in conn.execute(_sql.EXPIRED_CLAIMS, {"now": ms(now)})]
        recovered = []
        for task in expired:
            logger.info("claim of %s by %s expired", task.id, task.assigned_agent)
            recovered.append(self._fail(conn, task, "claim expired", FailureType.STALLED, now, 0))
        return recovered
