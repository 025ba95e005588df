"""BeadsAdapter: the local TaskStore, one SQLite file shared by every process.

Each public method checks its plain arguments (:mod:`~jetpack.beads._checks`)
on the event loop, then runs one job: a read (:mod:`~jetpack.beads._reads`) in
one snapshot on a reader thread, or a write (:mod:`~jetpack.beads._writes`) as
one ``BEGIN IMMEDIATE`` transaction on the writer thread
(:class:`jetpack.shared.sqlite.Database`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from jetpack.beads import _reads, _sql, _writes
from jetpack.beads._checks import (
    check_agent_id,
    check_error,
    check_failure_type,
    check_limit,
    check_minutes,
    check_skills,
    check_task_id,
    check_ttl,
)
from jetpack.beads._rows import collector_paused, dump_json, ms
from jetpack.beads._schema import ensure_schema
from jetpack.shared import (
    AsyncStoreMixin,
    FailureType,
    Task,
    TaskInput,
    TaskListOptions,
    TaskStats,
    TaskStatus,
    TaskUpdate,
    beads_jsonl,
    parse,
    utcnow,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.registry import config_options
from jetpack.shared.rules import (
    DEFAULT_CLAIM_TTL_MS,
    DEFAULT_RETRY_BASE_MS,
    check_json_object,
    check_options,
    option_names,
)
from jetpack.shared.sqlite import Database

__all__ = ["BeadsAdapter"]

logger = logging.getLogger(__name__)


class BeadsAdapter(AsyncStoreMixin):
    """Local task store: one SQLite file (WAL), read and written through jobs on threads.

    Safe for many coroutines and many processes on one file: every claim is one
    ``UPDATE … RETURNING`` in a ``BEGIN IMMEDIATE`` transaction, readiness is
    computed in SQL, failures back off exponentially and block dependants.

    Args:
        db_path: the database file; its folder is created on open.
        retry_base_ms: back-off base: a failed task waits ``base × 2^retries``.
        claim_ttl_ms: default claim lifetime; an unrenewed claim lapses after it.
        busy_timeout_ms: how long a write waits for another process's lock.
        pool_size: reader threads, each with its own connection.
        recovery_interval_ms: how often claims also sweep lapsed claims back to the
            queue (a claim that finds nothing always sweeps).

    Any other keyword is a ValidationError naming it.
    """

    def __init__(
        self,
        db_path: str | Path = ".beads/beads.db",
        *,
        retry_base_ms: int = DEFAULT_RETRY_BASE_MS,
        claim_ttl_ms: int = DEFAULT_CLAIM_TTL_MS,
        busy_timeout_ms: int = 30_000,
        pool_size: int = 4,
        recovery_interval_ms: int = 1_000,
        **unknown: object,
    ) -> None:
        check_options(unknown, _OPTIONS)
        if (
            isinstance(retry_base_ms, bool)
            or not isinstance(retry_base_ms, int)
            or retry_base_ms < 0
        ):
            raise ValidationError("retry_base_ms", "must be a non-negative integer")
        self.retry_base_ms = retry_base_ms
        self.claim_ttl_ms = check_ttl(claim_ttl_ms, "claim_ttl_ms")
        self.recovery_interval_ms = check_ttl(recovery_interval_ms, "recovery_interval_ms")
        self._claims = _writes.Claims(
            retry_base_ms=retry_base_ms, recovery_interval_ms=self.recovery_interval_ms
        )
        self.db_path = Path(db_path)
        self._db = Database(
            self.db_path,
            store="task database",
            setup=ensure_schema,
            busy_timeout_ms=check_ttl(busy_timeout_ms, "busy_timeout_ms"),
            readers=check_ttl(pool_size, "pool_size"),
        )

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build the project's store: ``config.local.tasks_db``, options from ``[beads]``.

        ``options`` override the table (an unknown one is a ValidationError;
        unknown keys of the table are only logged). ``agent_id`` is accepted for
        the registry's uniform call; a task store is shared by every agent, so
        it is not used.
        """
        table = config_options(config, "beads", _OPTIONS - {"db_path"})
        return cls(config.path(config.local.tasks_db), **{**table, **options})

    def __repr__(self) -> str:
        return f"BeadsAdapter({str(self.db_path)!r})"

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        """Create or upgrade the database and open connections (``async with`` does it)."""
        if not self._db.is_open:
            await self._db.open()
            logger.debug("opened task store %s", self.db_path)

    async def aclose(self) -> None:
        """Close every connection; the store can be opened again."""
        await self._db.close()

    # -- CRUD -----------------------------------------------------------------

    async def create_task(self, task: TaskInput | Mapping[str, Any]) -> Task:
        """Create one task. Existing id → ConflictError; unknown dependency → ValidationError."""
        return (await self.create_tasks([task]))[0]

    async def create_tasks(self, tasks: Sequence[TaskInput | Mapping[str, Any]]) -> list[Task]:
        """Create many tasks in one transaction: all or none; later items may use earlier ids."""
        if isinstance(tasks, str | bytes | Mapping) or not isinstance(tasks, Sequence):
            raise ValidationError("tasks", "must be a list of tasks")
        inputs = [parse(TaskInput, item) for item in tasks]
        return await self._db.write(_writes.create, inputs)

    async def import_tasks(
        self, tasks: Sequence[Task | Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        """Write whole tasks as given (ids, statuses, timestamps): all or none.

        For imports and migrations, not for agents. Dependencies may point
        anywhere in the batch or at stored tasks; unknown ids are a
        ValidationError, cycles a ConflictError. An existing id is a
        ConflictError unless ``replace`` is true, which overwrites that row.
        """
        parsed = [parse(Task, task) for task in tasks]
        ids = [task.id for task in parsed]
        if len(set(ids)) != len(ids):
            raise ConflictError("the same task id appears twice in the import")
        return await self._db.write(_writes.import_whole, parsed, replace)

    async def import_jsonl(self, path: str | Path, *, replace: bool = False) -> int:
        """Import a beads ``issues.jsonl`` file (see :mod:`jetpack.shared.beads_jsonl`)."""
        return await beads_jsonl.import_jsonl(
            self, path, replace=replace, claim_ttl_ms=self.claim_ttl_ms
        )

    async def export_jsonl(self, path: str | Path) -> int:
        """Export every task as beads ``issues.jsonl`` (see :mod:`jetpack.shared.beads_jsonl`)."""
        return await beads_jsonl.export_jsonl(self, path)

    async def get_task(self, task_id: str) -> Task | None:
        """The task, or None."""
        check_task_id(task_id)
        return await self._db.read(_reads.get, task_id)

    async def update_task(self, task_id: str, update: TaskUpdate | Mapping[str, Any]) -> Task:
        """Apply the fields set in ``update``; bumps ``version`` and ``updated_at``."""
        check_task_id(task_id)
        upd = parse(TaskUpdate, update)
        changes: dict[str, Any] = {name: getattr(upd, name) for name in upd.model_fields_set}
        return await self._db.write(_writes.update, task_id, changes)

    async def delete_task(self, task_id: str) -> bool:
        """Delete a task nobody depends on (else ConflictError); False if it did not exist."""
        check_task_id(task_id)
        return await self._db.write(_writes.delete, task_id)

    # -- queries --------------------------------------------------------------

    async def list_tasks(
        self, options: TaskListOptions | Mapping[str, Any] | None = None
    ) -> list[Task]:
        """Tasks matching the filters, in creation order (then id), with limit/offset."""
        opts = parse(TaskListOptions, options or {})
        return await self._list(opts)

    async def _list(self, opts: TaskListOptions, *, held_only: bool = False) -> list[Task]:
        statement = _sql.list_tasks_sql(
            status=bool(opts.status),
            priority=bool(opts.priority),
            agent=opts.assigned_agent is not None,
            branch=opts.branch is not None,
            tag=opts.tag is not None,
            held_only=held_only,
        )
        params = {
            "status": dump_json([s.value for s in opts.status or ()]),
            "priority": dump_json([p.value for p in opts.priority or ()]),
            "agent": opts.assigned_agent,
            "branch": opts.branch,
            "tag": opts.tag,
            "limit": -1 if opts.limit is None else opts.limit,
            "offset": opts.offset,
        }
        return await self._read_tasks(statement, params, big=opts.limit is None or opts.limit > 256)

    async def get_ready_tasks(self, limit: int | None = None) -> list[Task]:
        """Ready tasks in claim order: priority (critical first), then age, then id."""
        bound = check_limit(limit)
        statement = _sql.READY_ALL if bound < 0 else _sql.READY_TASKS
        params = {"now": ms(utcnow()), "limit": bound}
        return await self._read_tasks(statement, params, big=bound < 0 or bound > 256)

    async def _read_tasks(self, statement: str, params: dict[str, Any], *, big: bool) -> list[Task]:
        """Rows of a task query as tasks; a ``big`` one pauses the cycle collector."""
        with collector_paused(big):
            return await self._db.read(_reads.tasks, statement, params)

    async def get_tasks_by_status(self, status: TaskStatus) -> list[Task]:
        """Tasks in one status, in creation order."""
        return await self.list_tasks({"status": [status]})

    async def get_tasks_by_agent(self, agent_id: str) -> list[Task]:
        """Tasks the agent holds now (claimed or in progress)."""
        check_agent_id(agent_id)
        return await self._list(TaskListOptions(assigned_agent=agent_id), held_only=True)

    async def get_stats(self) -> TaskStats:
        """Counts by status and priority, the ready count, mean completion time."""
        return await self._db.read(_reads.stats, ms(utcnow()) or 0)

    async def sync(self) -> None:
        """Nothing to sync: this store has no remote replica."""

    # -- claims -------------------------------------------------------------------

    def _claim_ttl(self, agent_id: str, ttl_ms: int | None) -> int:
        check_agent_id(agent_id)
        return check_ttl(self.claim_ttl_ms if ttl_ms is None else ttl_ms)

    async def claim_task(
        self, task_id: str, agent_id: str, *, ttl_ms: int | None = None
    ) -> Task | None:
        """Claim one ready task; None if it is not ready or someone else won."""
        ttl = self._claim_ttl(agent_id, ttl_ms)
        check_task_id(task_id)
        return await self._db.write(self._claims.claim_task, task_id, agent_id, ttl)

    async def claim_next(
        self,
        agent_id: str,
        skills: Sequence[str] | None = None,
        *,
        ttl_ms: int | None = None,
    ) -> Task | None:
        """Atomically claim the best ready task whose required skills ``skills`` covers."""
        ttl = self._claim_ttl(agent_id, ttl_ms)
        wanted = check_skills(skills)
        encoded = None if wanted is None else dump_json(wanted)
        return await self._db.write(self._claims.claim_next, agent_id, ttl, encoded)

    async def renew_claim(self, task_id: str, agent_id: str, *, ttl_ms: int | None = None) -> Task:
        """Extend the holder's claim; ConflictError if ``agent_id`` does not hold it.

        A claim past its expiry is lost: the call raises ConflictError and the
        task is back in the queue (one retry used), committed.
        """
        ttl = self._claim_ttl(agent_id, ttl_ms)
        check_task_id(task_id)
        return await self._db.write(self._claims.renew, task_id, agent_id, ttl)

    async def start_task(self, task_id: str, agent_id: str) -> Task:
        """Mark a held task ``in_progress``; ConflictError if ``agent_id`` does not hold it."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        return await self._db.write(self._claims.start, task_id, agent_id)

    async def release_task(self, task_id: str, agent_id: str) -> bool:
        """Give a held task back (no retry used); False unless ``agent_id`` holds it."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        return await self._db.write(self._claims.release, task_id, agent_id)

    async def complete_task(
        self,
        task_id: str,
        agent_id: str,
        *,
        actual_minutes: int | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> Task:
        """Finish a held task: completed_at, actual_minutes (from the claim if not given)."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        minutes = check_minutes(actual_minutes)
        if result is not None:
            check_json_object(result, "result")
        return await self._db.write(self._claims.complete, task_id, agent_id, minutes, result)

    async def fail_task(
        self,
        task_id: str,
        agent_id: str,
        error: str,
        failure_type: FailureType = FailureType.ERROR,
    ) -> Task:
        """Record a failed attempt: back off and retry, or fail and block every dependant."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        message = check_error(error)
        kind = check_failure_type(failure_type)
        return await self._db.write(self._claims.fail, task_id, agent_id, message, kind)

    async def recover_expired_claims(self) -> list[Task]:
        """Return every lapsed claim to the queue (retry + 1, ``stalled``), now."""
        return await self._db.write(self._claims.recover)


_OPTIONS = option_names(BeadsAdapter)
"""The constructor's keywords: anything else is refused (``rules.check_options``)."""
