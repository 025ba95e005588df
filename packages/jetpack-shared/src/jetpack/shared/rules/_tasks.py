"""Task rules: readiness, ordering, dependency graphs and retry back-off."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jetpack.shared._tasks import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    Task,
    TaskPriority,
    TaskStatus,
)

__all__ = [
    "DEFAULT_CLAIM_TTL_MS",
    "DEFAULT_RETRY_BASE_MS",
    "MAX_RETRY_DELAY_MS",
    "Retry",
    "claim_order_key",
    "dependants_closure",
    "find_cycle",
    "has_skills",
    "is_final",
    "is_ready",
    "next_after_failure",
    "retry_delay_ms",
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
