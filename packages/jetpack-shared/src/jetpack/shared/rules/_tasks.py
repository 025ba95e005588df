"""Task rules: readiness, ordering, dependency graphs and retry back-off."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jetpack.shared._tasks import (
    FINAL_STATUSES,
    HELD_STATUSES,
    OPEN_STATUSES,
    Task,
    TaskPriority,
    TaskStatus,
)
from jetpack.shared.errors import ValidationError

__all__ = [
    "DEFAULT_CLAIM_TTL_MS",
    "DEFAULT_RETRY_BASE_MS",
    "MAX_RETRY_DELAY_MS",
    "Retry",
    "blocker_for",
    "blocker_names",
    "check_imported",
    "claim_order_key",
    "dependants_closure",
    "find_cycle",
    "has_skills",
    "is_final",
    "is_ready",
    "next_after_failure",
    "plan_block",
    "plan_rebase",
    "resettle",
    "retry_delay_ms",
    "status_change",
    "topological_order",
]

DEFAULT_CLAIM_TTL_MS = 15 * 60 * 1000
"""A claim lapses after 15 minutes unless renewed."""
DEFAULT_RETRY_BASE_MS = 30_000
"""First retry waits 30 s; each further retry doubles it."""
MAX_RETRY_DELAY_MS = 6 * 60 * 60 * 1000
"""Back-off never exceeds 6 hours."""


def is_ready(
    task: Task,
    dependency_status: Mapping[str, TaskStatus],
    now: datetime,
) -> bool:
    """The ready rule, shared by every backend.

    A task is ready when its status is pending or ready, every dependency is
    completed (an unknown dependency counts as not completed), it has no
    blockers, and its back-off (``not_before``) has passed.

    The stored status agrees with this rule apart from the back-off: a waiting
    task is stored ``ready`` exactly when it is ready or only its back-off keeps
    it (see :func:`resettle`), so listing by status ``ready`` and
    ``get_ready_tasks`` differ only by tasks whose ``not_before`` is ahead.
    """
    if task.status not in OPEN_STATUSES or task.blockers:
        return False
    if task.not_before is not None and task.not_before > now:
        return False
    return all(dependency_status.get(dep) == TaskStatus.COMPLETED for dep in task.dependencies)


def has_skills(task: Task, skills: Iterable[str] | None) -> bool:
    """True when ``skills`` is None (any task) or holds every required skill."""
    if skills is None:
        return True
    return set(task.required_skills) <= set(skills)


def claim_order_key(task: Task) -> tuple[int, datetime, str]:
    """Sort key for ``claim_next``: priority (critical first), then age, then id."""
    return (TaskPriority(task.priority).rank, task.created_at, task.id)


def find_cycle(
    task_id: str,
    dependencies: Iterable[str],
    dependencies_of: Callable[[str], Iterable[str]],
) -> list[str] | None:
    """Return a cycle (as a path of ids) if ``task_id`` depending on ``dependencies`` makes one.

    ``dependencies_of(id)`` gives the current dependencies of an existing task.
    """
    stack: list[tuple[str, list[str]]] = [(dep, [task_id, dep]) for dep in dependencies]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == task_id:
            return path
        if node in seen:
            continue
        seen.add(node)
        stack.extend((nxt, [*path, nxt]) for nxt in dependencies_of(node))
    return None


def dependants_closure(task_id: str, dependants_of: Callable[[str], Iterable[str]]) -> list[str]:
    """Every task that depends on ``task_id``, directly or transitively (breadth first)."""
    order: list[str] = []
    seen = {task_id}
    frontier = [task_id]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for dep in dependants_of(node):
                if dep not in seen:
                    seen.add(dep)
                    order.append(dep)
                    nxt.append(dep)
        frontier = nxt
    return order


def retry_delay_ms(retries_before: int, base_ms: int = DEFAULT_RETRY_BASE_MS) -> int:
    """Back-off before the next attempt: ``base × 2^retries_before``, capped."""
    if retries_before < 0 or base_ms < 0:
        raise ValueError("retries_before and base_ms must be >= 0")
    return int(min(base_ms * (2 ** min(retries_before, 40)), MAX_RETRY_DELAY_MS))


@dataclass(frozen=True, slots=True)
class Retry:
    """What happens to a task after a failed attempt."""

    status: TaskStatus
    """``ready`` (will retry) or ``failed`` (out of retries)."""
    retry_count: int
    not_before: datetime | None


def next_after_failure(task: Task, now: datetime, base_ms: int = DEFAULT_RETRY_BASE_MS) -> Retry:
    """Apply a failure: count it; retry after back-off while retries remain, else fail.

    ``max_retries`` counts retries after the first attempt: with 2, a task runs
    at most 3 times.
    """
    retries_before = task.retry_count
    count = retries_before + 1
    if count <= task.max_retries:
        delay = timedelta(milliseconds=retry_delay_ms(retries_before, base_ms))
        return Retry(TaskStatus.READY, count, now + delay)
    return Retry(TaskStatus.FAILED, count, None)


def is_final(status: TaskStatus) -> bool:
    """True for completed and failed."""
    return status in FINAL_STATUSES


# -- dependency blocking ------------------------------------------------------------
#
# A dependant of a failed or blocked task is ``blocked``, with a blocker naming
# the task that blocks it: ``"dependency <id> failed"`` or ``"dependency <id>
# blocked"``. Every store applies the same three rules whenever a status or an
# edge changes (create, update, import, complete, fail, release, lapse):
#
# - plan_block: a task that fails (or is blocked) blocks its whole dependants
#   closure, each naming it (the root cause), except final and held tasks.
# - resettle: a waiting task (not held, not final) is placed where it belongs:
#   blocked while a dependency is failed or blocked, else ready when every
#   dependency is completed and it has no blockers, else pending. Blockers that
#   name a task no longer failed or blocked are dropped; a task blocked by hand
#   (no such blocker) stays blocked.
# - when a task leaves completed, failed or blocked, its dependants closure is
#   resettled in topological order (dependencies first).

_BLOCKING = frozenset({TaskStatus.FAILED, TaskStatus.BLOCKED})


def blocker_for(dependency_id: str, status: TaskStatus | None) -> str | None:
    """The blocker a dependant carries while ``dependency_id`` is failed or blocked."""
    if status is TaskStatus.FAILED:
        return f"dependency {dependency_id} failed"
    if status is TaskStatus.BLOCKED:
        return f"dependency {dependency_id} blocked"
    return None


def blocker_names(blocker: str) -> str | None:
    """The task id a dependency blocker names (see :func:`blocker_for`), or None."""
    parts = blocker.split(" ")
    if len(parts) == 3 and parts[0] == "dependency" and parts[2] in ("failed", "blocked"):
        return parts[1]
    return None


def resettle(
    task: Task, status_of: Callable[[str], TaskStatus | None]
) -> tuple[TaskStatus, list[str]]:
    """Where a waiting task belongs now, and its blockers; held and final tasks stay.

    ``status_of(id)`` gives the current status of a task (None if unknown).
    Blocked while a dependency blocker is left (one naming a task still failed
    or blocked, or one added for a failed or blocked dependency); blocked by hand
    (status blocked, no dependency blocker dropped) stays blocked; else pending
    while any blocker or unfinished dependency remains; else ready.
    """
    if task.status in HELD_STATUSES or task.status in FINAL_STATUSES:
        return task.status, list(task.blockers)
    kept: list[str] = []
    dropped = False
    for blocker in task.blockers:
        named = blocker_names(blocker)
        if named is not None and status_of(named) not in _BLOCKING:
            dropped = True
        else:
            kept.append(blocker)
    statuses = {dep: status_of(dep) for dep in task.dependencies}
    if not any(blocker_names(b) for b in kept):
        for dep, status in statuses.items():
            label = blocker_for(dep, status)
            if label is not None and label not in kept:
                kept.append(label)
    if any(blocker_names(b) for b in kept):
        return TaskStatus.BLOCKED, kept
    if task.status is TaskStatus.BLOCKED and not dropped:
        return TaskStatus.BLOCKED, kept
    if kept or any(status is not TaskStatus.COMPLETED for status in statuses.values()):
        return TaskStatus.PENDING, kept
    return TaskStatus.READY, kept


def plan_block(
    task_id: str,
    blocker: str,
    dependants_of: Callable[[str], Iterable[str]],
    get: Callable[[str], Task | None],
) -> list[tuple[str, list[str]]]:
    """Block the dependants closure of ``task_id``: ``(id, new blockers)`` per task to change.

    Final and held tasks are left alone (a held task is resettled when it comes
    back to the queue); a task already blocked by a dependency keeps its blockers.
    """
    out: list[tuple[str, list[str]]] = []
    for dep_id in dependants_closure(task_id, dependants_of):
        task = get(dep_id)
        if task is None or task.status in FINAL_STATUSES or task.status in HELD_STATUSES:
            continue
        if task.status is TaskStatus.BLOCKED and any(blocker_names(b) for b in task.blockers):
            continue
        blockers = task.blockers if blocker in task.blockers else [*task.blockers, blocker]
        out.append((dep_id, list(blockers)))
    return out


def plan_rebase(
    ids: Sequence[str],
    edges: Iterable[tuple[str, str]],
    get: Callable[[str], Task | None],
    status_of: Callable[[str], TaskStatus | None],
) -> list[tuple[str, TaskStatus, list[str]]]:
    """After an edit of dependencies: ``(id, status, blockers)`` per task to change.

    ``ids`` are the edited tasks and their dependants closure, ``edges`` every
    ``(task_id, depends_on)`` edge at or above them (the edit included). A
    dependency blocker names a failed or blocked task *above* its task; once an
    edit takes that task out from above, the blocker stands for nothing (and
    reopening the task it names would never reach it), so it is dropped and the
    task placed again by :func:`resettle` (held and final tasks keep their
    status), as is every task that depends on or names one that changed.
    """
    below: dict[str, list[str]] = defaultdict(list)
    parents: dict[str, list[str]] = defaultdict(list)
    for child, parent in edges:
        below[parent].append(child)
        parents[child].append(parent)
    reach: dict[str, set[str]] = {}

    def is_above(name: str, task_id: str) -> bool:
        if name not in reach:
            reach[name] = set(dependants_closure(name, lambda n: below.get(n, ())))
        return task_id in reach[name]

    changed: dict[str, TaskStatus] = {}
    out: list[tuple[str, TaskStatus, list[str]]] = []
    for task_id in topological_order(ids, lambda n: parents.get(n, ())):
        task = get(task_id)
        if task is None:
            continue
        named = {b: n for b in task.blockers if (n := blocker_names(b)) is not None}
        stale = [b for b, n in named.items() if not is_above(n, task_id)]
        names = list(named.values())
        if not stale and not any(n in changed for n in (*task.dependencies, *names)):
            continue
        if task.status in HELD_STATUSES or task.status in FINAL_STATUSES:
            status, blockers = task.status, [b for b in task.blockers if b not in stale]
        else:

            def status_above(name: str, task_id: str = task_id) -> TaskStatus | None:
                if not is_above(name, task_id):
                    return None
                return changed[name] if name in changed else status_of(name)

            status, blockers = resettle(task, status_above)
        if status is not task.status or blockers != task.blockers:
            changed[task_id] = status
            out.append((task_id, status, blockers))
    return out


def topological_order(
    ids: Iterable[str], dependencies_of: Callable[[str], Iterable[str]]
) -> list[str]:
    """``ids`` ordered so that each comes after those of its dependencies among ``ids``.

    Ties keep the given order; the graph is acyclic (stores refuse cycles).
    """
    order = list(dict.fromkeys(ids))
    members = set(order)
    waiting = {node: 0 for node in order}
    below: dict[str, list[str]] = {node: [] for node in order}
    for node in order:
        for dep in set(dependencies_of(node)):
            if dep in members:
                waiting[node] += 1
                below[dep].append(node)
    ready = deque(node for node in order if waiting[node] == 0)
    out: list[str] = []
    while ready:
        node = ready.popleft()
        out.append(node)
        for child in below[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    out.extend(node for node in order if waiting[node] > 0)  # only if given a cycle
    return out


# -- status changes outside the claim lifecycle ---------------------------------------

_HELD_BY_CLAIM = (
    "claimed and in_progress are set by claim_task, claim_next and start_task, "
    "which record the holder and its expiry"
)


def status_change(task: Task, status: TaskStatus, now: datetime) -> dict[str, Any]:
    """What ``update_task(id, {"status": status})`` also sets, or ValidationError('status').

    Held statuses only come from claims (a held task keeps its status). Leaving a
    held status ends the claim (no holder, no expiry; a completed task keeps the
    agent that did it); completing sets ``completed_at``, reopening clears it.
    The store then applies the dependants' side of the change (block, resettle).
    """
    status = TaskStatus(status)
    if status in HELD_STATUSES and status is not task.status:
        raise ValidationError("status", _HELD_BY_CLAIM)
    changes: dict[str, Any] = {}
    if task.status in HELD_STATUSES and status not in HELD_STATUSES:
        changes["claim_expires_at"] = None
        if status is not TaskStatus.COMPLETED:
            changes["assigned_agent"] = None
    if status is TaskStatus.COMPLETED and task.completed_at is None:
        changes["completed_at"] = now
    elif status is not TaskStatus.COMPLETED and task.completed_at is not None:
        changes["completed_at"] = None
    return changes


def check_imported(task: Task) -> Task:
    """A whole task to import: a held one needs its holder and claim expiry."""
    if task.status in HELD_STATUSES and (
        task.assigned_agent is None or task.claim_expires_at is None
    ):
        raise ValidationError(
            "status",
            f"task {task.id!r} is {task.status.value} but has no "
            f"{'assigned_agent' if task.assigned_agent is None else 'claim_expires_at'}; "
            "import it as pending, or with its holder and claim expiry",
        )
    return task
