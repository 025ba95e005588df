"""Model-based check of a TaskStore: random work on it and on the reference store.

Both stores get the same calls (explicit ids, no timing). After every step the
answers, and every task's status, blockers, holder, retry count and
dependencies, must agree; no waiting task may be stranded (pending or ready
below a failed or blocked task) or blocked for nothing (``stale_blocked``);
and the ready lists must match. It judges the
dependency rules wherever they run: in Python (jetpack-beads) or ported to the
Worker (jetpack-cf-beads).
"""

from __future__ import annotations

import random
from typing import Any

from jetpack.shared._protocols import TaskStore
from jetpack.shared._tasks import Task, TaskStatus
from jetpack.shared.errors import ConflictError, JetpackError, ValidationError
from jetpack.shared.rules import blocker_names
from jetpack.shared.testing._reference_tasks import InMemoryTaskStore

__all__ = ["agree_on_random_work", "stale_blocked"]

_BLOCKING = (TaskStatus.FAILED, TaskStatus.BLOCKED)

_OPS = (
    "create",
    "create",
    "claim",
    "claim",
    "complete",
    "fail",
    "release",
    "start",
    "update_status",
    "update_deps",
    "update_blockers",
    "claim_next",
)


def _view(tasks: list[Task]) -> dict[str, tuple[Any, ...]]:
    return {
        t.id: (t.status, sorted(t.blockers), t.assigned_agent, t.retry_count, t.dependencies)
        for t in tasks
    }


def _stranded(tasks: list[Task]) -> list[str]:
    """Waiting tasks that can never run: a dependency failed or blocked, yet not blocked."""
    status = {t.id: t.status for t in tasks}
    return [
        t.id
        for t in tasks
        if t.status in (TaskStatus.PENDING, TaskStatus.READY)
        and any(status.get(d) in _BLOCKING for d in t.dependencies)
    ]


def stale_blocked(tasks: list[Task]) -> list[str]:
    """Blocked tasks held by dependency blockers alone, none naming a failed or blocked task.

    Such a task is blocked for nothing: nothing left to fail or reopen will ever free it.
    """
    status = {t.id: t.status for t in tasks}
    out = []
    for t in tasks:
        named = [blocker_names(b) for b in t.blockers]
        if t.status is not TaskStatus.BLOCKED or not any(n is not None for n in named):
            continue
        if not any(n is None or status.get(n) in _BLOCKING for n in named):
            out.append(t.id)
    return out


async def _call(store: TaskStore, name: str, *args: Any) -> object:
    try:
        return await getattr(store, name)(*args)
    except (ConflictError, ValidationError) as exc:
        return type(exc).__name__
    except JetpackError as exc:  # pragma: no cover - would be a bug either way
        return f"{type(exc).__name__}: {exc}"


def _summary(result: object) -> object:
    if isinstance(result, Task):
        return (result.id, result.status, sorted(result.blockers), result.assigned_agent)
    if isinstance(result, list):
        return [_summary(r) for r in result]
    return result


def _step(rng: random.Random, ids: list[str], prefix: str) -> tuple[str, tuple[Any, ...]]:
    """The next call: a method name and its arguments (may add a new id to ``ids``)."""
    op = rng.choice(_OPS)
    agent = rng.choice(["a1", "a2"])
    target = rng.choice(ids) if ids else None
    if op == "create" or target is None:
        new_id = f"{prefix}-{len(ids)}"
        deps = rng.sample(ids, k=min(len(ids), rng.choice([0, 1, 1, 2])))
        retries = rng.choice([0, 0, 1])
        item = {"id": new_id, "title": new_id, "dependencies": deps, "max_retries": retries}
        ids.append(new_id)
        return "create_task", (item,)
    if op == "claim_next":
        return "claim_next", (agent,)
    simple = {
        "claim": ("claim_task", (target, agent)),
        "complete": ("complete_task", (target, agent)),
        "fail": ("fail_task", (target, agent, "boom")),
        "release": ("release_task", (target, agent)),
        "start": ("start_task", (target, agent)),
    }
    if op in simple:
        return simple[op]
    if op == "update_status":
        status = rng.choice(["pending", "ready", "failed", "blocked", "completed"])
        return "update_task", (target, {"status": status})
    if op == "update_deps":
        deps = rng.sample(ids, k=min(len(ids), rng.choice([0, 1, 2])))
        return "update_task", (target, {"dependencies": deps})
    return "update_task", (target, {"blockers": rng.choice([[], ["needs a decision"]])})


async def agree_on_random_work(store: TaskStore, seed: int, steps: int = 80) -> None:
    """Run ``steps`` random calls on ``store`` (open, empty, ``retry_base_ms=0``) and the reference.

    Raises AssertionError at the first step where they disagree, naming the
    step and the call. Ids are ``bd-<seed>-<n>``.
    """
    rng = random.Random(seed)
    ids: list[str] = []
    async with InMemoryTaskStore(retry_base_ms=0) as ref:
        for step in range(steps):
            name, args = _step(rng, ids, f"bd-{seed}")
            expected = _summary(await _call(ref, name, *args))
            got = _summary(await _call(store, name, *args))
            where = (step, name, args)
            assert got == expected, (*where, got, expected)
            tasks = await store.list_tasks()
            assert _view(tasks) == _view(await ref.list_tasks()), where
            assert _stranded(tasks) == [], where
            assert stale_blocked(tasks) == [], where
            ready = [t.id for t in await store.get_ready_tasks()]
            assert ready == [t.id for t in await ref.get_ready_tasks()], where
