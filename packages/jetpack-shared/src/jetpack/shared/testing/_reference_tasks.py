"""In-memory reference TaskStore: the kit's proof that its rules can be met.

A test aid, never registered as a backend. One asyncio lock makes every method
atomic within the event loop; it is not shared across processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from jetpack.shared._base import MAX_METADATA_BYTES, parse
from jetpack.shared._lifecycle import AsyncStoreMixin
from jetpack.shared._tasks import (
    HELD_STATUSES,
    OPEN_STATUSES,
    FailureType,
    Task,
    TaskInput,
    TaskListOptions,
    TaskPriority,
    TaskStats,
    TaskStatus,
    TaskUpdate,
)
from jetpack.shared._time import utcnow
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError
from jetpack.shared.rules import (
    DEFAULT_CLAIM_TTL_MS,
    DEFAULT_RETRY_BASE_MS,
    blocker_for,
    blocker_names,
    check_agent_id,
    check_imported,
    check_json_object,
    check_options,
    check_text,
    check_ttl,
    claim_order_key,
    dependants_closure,
    find_cycle,
    has_skills,
    is_ready,
    new_task_id,
    next_after_failure,
    plan_block,
    plan_rebase,
    resettle,
    status_change,
    topological_order,
)

__all__ = ["InMemoryTaskStore"]


class InMemoryTaskStore(AsyncStoreMixin):
    """A TaskStore kept in a dict. Options: ``retry_base_ms``, ``claim_ttl_ms``."""

    def __init__(
        self,
        *,
        retry_base_ms: int = DEFAULT_RETRY_BASE_MS,
        claim_ttl_ms: int = DEFAULT_CLAIM_TTL_MS,
        **unknown: object,
    ) -> None:
        check_options(unknown, ("retry_base_ms", "claim_ttl_ms"))
        self._tasks: dict[str, Task] = {}
        self._lock = asyncio.Lock()
        self.retry_base_ms = retry_base_ms
        self.claim_ttl_ms = check_ttl(claim_ttl_ms, "claim_ttl_ms")

    # -- helpers -----------------------------------------------------------

    def _deps_of(self, task_id: str) -> list[str]:
        task = self._tasks.get(task_id)
        return list(task.dependencies) if task else []

    def _dependants_of(self, task_id: str) -> list[str]:
        return [t.id for t in self._tasks.values() if task_id in t.dependencies]

    def _ready(self, task: Task, now: datetime) -> bool:
        statuses = {d: self._tasks[d].status for d in task.dependencies if d in self._tasks}
        return is_ready(task, statuses, now)

    def _check_graph(self, task_id: str, deps: Sequence[str], known: Mapping[str, Task]) -> None:
        for dep in deps:
            if dep == task_id:
                raise ConflictError(f"task {task_id!r} cannot depend on itself")
            if dep not in known:
                raise ValidationError("dependencies", f"unknown task id {dep!r}")

        def deps_of(node: str) -> list[str]:
            found = known.get(node)
            return list(found.dependencies) if found else []

        cycle = find_cycle(task_id, deps, deps_of)
        if cycle:
            raise ConflictError("dependency cycle: " + " -> ".join(cycle))

    def _held(self, task_id: str, agent_id: str) -> Task:
        """The task ``agent_id`` holds; a lapsed claim is swept first, so it is lost."""
        self._recover(utcnow())
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        if task.status not in HELD_STATUSES or task.assigned_agent != agent_id:
            raise ConflictError(f"task {task_id!r} is not held by {agent_id!r}")
        return task

    def _put(self, task: Task, **changes: Any) -> Task:
        changes.setdefault("updated_at", utcnow())
        new = task.model_copy(update={**changes, "version": task.version + 1})
        self._tasks[task.id] = new
        return new

    def _status_of(self, task_id: str) -> TaskStatus | None:
        task = self._tasks.get(task_id)
        return None if task is None else task.status

    def _resettle(self, task: Task) -> Task:
        """Place a waiting task where the dependency rules say (rules.resettle)."""
        status, blockers = resettle(task, self._status_of)
        if status is task.status and blockers == task.blockers:
            return task
        new = self._put(task, status=status, blockers=blockers)
        self._after_status_change(task, new)
        return new

    def _after_status_change(self, old: Task, new: Task) -> None:
        """The dependants' side of a status change: block, promote or resettle them."""
        if new.status is old.status:
            return
        if new.status in (TaskStatus.FAILED, TaskStatus.BLOCKED):
            label = next(
                (b for b in new.blockers if blocker_names(b)), blocker_for(new.id, new.status)
            )
            assert label is not None
            for dep_id, blockers in plan_block(new.id, label, self._dependants_of, self._tasks.get):
                self._put(self._tasks[dep_id], status=TaskStatus.BLOCKED, blockers=blockers)
        elif old.status in (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.COMPLETED):
            self._resettle_closure(new.id)
        elif new.status is TaskStatus.COMPLETED:
            for dep_id in self._dependants_of(new.id):  # promote: pending ones may be ready
                if self._tasks[dep_id].status is TaskStatus.PENDING:
                    self._resettle(self._tasks[dep_id])

    def _resettle_closure(self, task_id: str) -> None:
        closure = dependants_closure(task_id, self._dependants_of)
        for dep_id in topological_order(closure, self._deps_of):
            self._resettle(self._tasks[dep_id])

    def _place(
        self, task: Task, status: TaskStatus, blockers: list[str], keep: Collection[str] = ()
    ) -> None:
        """Store a task's new status and blockers (ids in ``keep``: no new version)."""
        if task.id in keep:
            self._tasks[task.id] = task.model_copy(update={"status": status, "blockers": blockers})
        else:
            self._put(task, status=status, blockers=blockers)

    def _rebase(self, ids: list[str], keep: Collection[str] = ()) -> None:
        """After an edit of dependencies (rules.plan_rebase); ``keep``: no new version."""
        edges = [(t.id, d) for t in self._tasks.values() for d in t.dependencies]
        for changed_id, status, blockers in plan_rebase(
            ids, edges, self._tasks.get, self._status_of
        ):
            self._place(self._tasks[changed_id], status, blockers, keep)

    def _recover(self, now: datetime) -> list[Task]:
        out = []
        for task in list(self._tasks.values()):
            expired = task.claim_expires_at is not None and task.claim_expires_at <= now
            if task.status in HELD_STATUSES and expired:
                out.append(self._apply_failure(task, "claim expired", FailureType.STALLED, now, 0))
        return out

    def _apply_failure(
        self, task: Task, error: str, kind: FailureType, now: datetime, base_ms: int
    ) -> Task:
        retry = next_after_failure(task, now, base_ms)
        new = self._put(
            task,
            status=retry.status,
            retry_count=retry.retry_count,
            not_before=retry.not_before,
            last_error=error,
            failure_type=kind,
            assigned_agent=None,
            claim_expires_at=None,
        )
        self._after_status_change(task, new)
        return self._resettle(new)

    # -- CRUD --------------------------------------------------------------

    async def create_task(self, task: TaskInput | Mapping[str, Any]) -> Task:
        """Create one task."""
        return (await self.create_tasks([task]))[0]

    async def create_tasks(self, tasks: Sequence[TaskInput | Mapping[str, Any]]) -> list[Task]:
        """Create many, all or none."""
        inputs = [parse(TaskInput, t) for t in tasks]
        async with self._lock:
            staged: dict[str, Task] = dict(self._tasks)
            created: list[Task] = []
            now = utcnow()
            for item in inputs:
                task_id = item.id or new_task_id()
                if task_id in staged:
                    raise ConflictError(f"task {task_id!r} already exists")
                self._check_graph(task_id, item.dependencies, staged)
                data = item.model_dump(exclude={"id"})
                if item.status is TaskStatus.COMPLETED:
                    data["completed_at"] = now
                task = Task(id=task_id, created_at=now, updated_at=now, **data)

                def status_of(dep: str) -> TaskStatus | None:
                    found = staged.get(dep)
                    return None if found is None else found.status

                status, blockers = resettle(task, status_of)
                task = task.model_copy(update={"status": status, "blockers": blockers})
                staged[task_id] = task
                created.append(task)
            self._tasks = staged
            return created

    async def import_tasks(
        self, tasks: Sequence[Task | Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        """Write whole tasks, all or none."""
        parsed = [check_imported(parse(Task, t)) for t in tasks]
        ids = [t.id for t in parsed]
        if len(set(ids)) != len(ids):
            raise ConflictError("the same task id appears twice in the import")
        async with self._lock:
            if not replace:
                taken = sorted(set(ids) & set(self._tasks))
                if taken:
                    raise ConflictError(f"task {taken[0]!r} already exists")
            staged = {**self._tasks, **{t.id: t for t in parsed}}
            for task in parsed:
                self._check_graph(task.id, task.dependencies, staged)
            self._tasks = staged
            # Imported statuses are kept, except where the dependency rules place a
            # waiting task (a batch task keeps its version and updated_at).
            batch = set(ids)
            touched = [*ids]
            for task_id in ids:
                touched.extend(dependants_closure(task_id, self._dependants_of))
            for task_id in topological_order(touched, self._deps_of):
                task = self._tasks[task_id]
                status, blockers = resettle(task, self._status_of)
                if status is not task.status or blockers != task.blockers:
                    self._place(task, status, blockers, keep=batch)
            if replace:  # edges of stored tasks were replaced
                self._rebase(touched, batch)
            return len(parsed)

    async def get_task(self, task_id: str) -> Task | None:
        """Return the task or None."""
        return self._tasks.get(task_id)

    async def update_task(self, task_id: str, update: TaskUpdate | Mapping[str, Any]) -> Task:
        """Apply the set fields."""
        upd = parse(TaskUpdate, update)
        changes = {k: getattr(upd, k) for k in upd.model_fields_set}
        async with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise NotFoundError("task", task_id)
            if "dependencies" in changes:
                self._check_graph(task_id, changes["dependencies"], self._tasks)
            now = utcnow()
            if "status" in changes:
                changes.update(status_change(task, changes["status"], now))
            new = self._put(task, **changes, updated_at=now)
            if new.status in OPEN_STATUSES:
                status, blockers = resettle(new, self._status_of)
                new = self._tasks[task_id] = new.model_copy(
                    update={"status": status, "blockers": blockers}
                )
            self._after_status_change(task, new)
            if "dependencies" in changes:
                self._rebase([task_id, *dependants_closure(task_id, self._dependants_of)])
            return self._tasks[task_id]

    async def delete_task(self, task_id: str) -> bool:
        """Delete a task nobody depends on."""
        async with self._lock:
            if task_id not in self._tasks:
                return False
            dependants = self._dependants_of(task_id)
            if dependants:
                raise ConflictError(f"task {task_id!r} has dependants: {', '.join(dependants)}")
            del self._tasks[task_id]
            return True

    # -- queries -----------------------------------------------------------

    async def list_tasks(
        self, options: TaskListOptions | Mapping[str, Any] | None = None
    ) -> list[Task]:
        """Filter, in creation order."""
        opts = parse(TaskListOptions, options or {})
        out = list(self._tasks.values())  # insertion order = creation order
        if opts.status:
            out = [t for t in out if t.status in opts.status]
        if opts.priority:
            out = [t for t in out if t.priority in opts.priority]
        if opts.assigned_agent is not None:
            out = [t for t in out if t.assigned_agent == opts.assigned_agent]
        if opts.branch is not None:
            out = [t for t in out if t.branch == opts.branch]
        if opts.tag is not None:
            out = [t for t in out if opts.tag in t.tags]
        out = out[opts.offset :]
        return out[: opts.limit] if opts.limit is not None else out

    async def get_ready_tasks(self, limit: int | None = None) -> list[Task]:
        """Ready tasks in claim order."""
        now = utcnow()
        ready = sorted(
            (t for t in self._tasks.values() if self._ready(t, now)), key=claim_order_key
        )
        return ready[:limit] if limit is not None else ready

    async def get_tasks_by_status(self, status: TaskStatus) -> list[Task]:
        """Tasks in one status."""
        return await self.list_tasks({"status": [TaskStatus(status)]})

    async def get_tasks_by_agent(self, agent_id: str) -> list[Task]:
        """Tasks the agent holds."""
        held = await self.list_tasks({"assigned_agent": agent_id})
        return [t for t in held if t.status in HELD_STATUSES]

    # -- claims ------------------------------------------------------------

    def _claim(self, task: Task, agent_id: str, ttl_ms: int, now: datetime) -> Task:
        return self._put(
            task,
            status=TaskStatus.CLAIMED,
            assigned_agent=agent_id,
            claim_expires_at=now + timedelta(milliseconds=ttl_ms),
            last_attempt_at=now,
            updated_at=now,
        )

    async def claim_task(
        self, task_id: str, agent_id: str, *, ttl_ms: int | None = None
    ) -> Task | None:
        """Claim one ready task."""
        check_agent_id(agent_id)
        ttl = check_ttl(ttl_ms if ttl_ms is not None else self.claim_ttl_ms)
        async with self._lock:
            now = utcnow()
            self._recover(now)
            task = self._tasks.get(task_id)
            if task is None:
                raise NotFoundError("task", task_id)
            if not self._ready(task, now):
                return None
            return self._claim(task, agent_id, ttl, now)

    async def claim_next(
        self,
        agent_id: str,
        skills: Sequence[str] | None = None,
        *,
        ttl_ms: int | None = None,
    ) -> Task | None:
        """Claim the best ready task the agent can do."""
        check_agent_id(agent_id)
        ttl = check_ttl(ttl_ms if ttl_ms is not None else self.claim_ttl_ms)
        async with self._lock:
            now = utcnow()
            self._recover(now)
            ready = [
                t for t in self._tasks.values() if self._ready(t, now) and has_skills(t, skills)
            ]
            if not ready:
                return None
            return self._claim(min(ready, key=claim_order_key), agent_id, ttl, now)

    async def renew_claim(self, task_id: str, agent_id: str, *, ttl_ms: int | None = None) -> Task:
        """Extend the holder's claim."""
        ttl = check_ttl(ttl_ms if ttl_ms is not None else self.claim_ttl_ms)
        async with self._lock:
            task = self._held(task_id, agent_id)
            now = utcnow()
            return self._put(task, claim_expires_at=now + timedelta(milliseconds=ttl))

    async def start_task(self, task_id: str, agent_id: str) -> Task:
        """Mark a held task in progress."""
        async with self._lock:
            task = self._held(task_id, agent_id)
            return self._put(task, status=TaskStatus.IN_PROGRESS)

    async def release_task(self, task_id: str, agent_id: str) -> bool:
        """Give a held task back without using a retry."""
        async with self._lock:
            self._recover(utcnow())
            task = self._tasks.get(task_id)
            if task is None or task.status not in HELD_STATUSES or task.assigned_agent != agent_id:
                return False
            back = self._put(
                task, status=TaskStatus.READY, assigned_agent=None, claim_expires_at=None
            )
            self._resettle(back)
            return True

    async def complete_task(
        self,
        task_id: str,
        agent_id: str,
        *,
        actual_minutes: int | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> Task:
        """Finish a held task."""
        if result is not None:
            check_json_object(result, "result", MAX_METADATA_BYTES)
        async with self._lock:
            task = self._held(task_id, agent_id)
            now = utcnow()
            if actual_minutes is None and task.last_attempt_at is not None:
                actual_minutes = int((now - task.last_attempt_at).total_seconds() // 60)
            metadata = dict(task.metadata)
            if result is not None:
                metadata["result"] = dict(result)
                check_json_object(metadata, "result", MAX_METADATA_BYTES)
            done = self._put(
                task,
                status=TaskStatus.COMPLETED,
                completed_at=now,
                actual_minutes=actual_minutes,
                claim_expires_at=None,
                metadata=metadata,
                updated_at=now,
            )
            self._after_status_change(task, done)
            return done

    async def fail_task(
        self,
        task_id: str,
        agent_id: str,
        error: str,
        failure_type: FailureType = FailureType.ERROR,
    ) -> Task:
        """Record a failed attempt."""
        kind = FailureType(failure_type)
        check_text(error, "error")
        async with self._lock:
            task = self._held(task_id, agent_id)
            return self._apply_failure(task, error, kind, utcnow(), self.retry_base_ms)

    async def recover_expired_claims(self) -> list[Task]:
        """Requeue lapsed claims now."""
        async with self._lock:
            return self._recover(utcnow())

    async def sync(self) -> None:
        """Nothing to sync."""

    async def get_stats(self) -> TaskStats:
        """Counts."""
        tasks = list(self._tasks.values())
        now = utcnow()
        done = [
            t.actual_minutes
            for t in tasks
            if t.status is TaskStatus.COMPLETED and t.actual_minutes is not None
        ]
        return TaskStats(
            total=len(tasks),
            by_status={s: sum(t.status is s for t in tasks) for s in TaskStatus},
            by_priority={p: sum(t.priority is p for t in tasks) for p in TaskPriority},
            ready=sum(self._ready(t, now) for t in tasks),
            avg_completion_minutes=sum(done) / len(done) if done else None,
        )
