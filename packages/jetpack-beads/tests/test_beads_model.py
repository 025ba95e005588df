"""Model-based: random operation sequences on BeadsAdapter and the kit's reference store.

Both stores get the same calls (explicit ids, no timing); after every step the
statuses, blockers, holders and retry counts must agree, and no waiting task may
be stranded (pending with nothing left that could finish its dependencies).
"""

import random
from pathlib import Path
from typing import Any

import pytest

from jetpack.beads import BeadsAdapter
from jetpack.shared import Task, TaskStatus, TaskStore
from jetpack.shared.errors import ConflictError, JetpackError, ValidationError
from jetpack.shared.testing import InMemoryTaskStore


def view(tasks: list[Task]) -> dict[str, tuple[Any, ...]]:
    return {
        t.id: (t.status, sorted(t.blockers), t.assigned_agent, t.retry_count, t.dependencies)
        for t in tasks
    }


def stranded(tasks: list[Task]) -> list[str]:
    """Waiting tasks that can never run: a dependency failed or blocked, yet not blocked."""
    status = {t.id: t.status for t in tasks}
    out = []
    for t in tasks:
        if t.status in (TaskStatus.PENDING, TaskStatus.READY) and any(
            status.get(d) in (TaskStatus.FAILED, TaskStatus.BLOCKED) for d in t.dependencies
        ):
            out.append(t.id)
    return out


async def call(store: TaskStore, name: str, *args: Any, **kwargs: Any) -> object:
    try:
        return await getattr(store, name)(*args, **kwargs)
    except (ConflictError, ValidationError) as exc:
        return type(exc).__name__
    except JetpackError as exc:  # pragma: no cover - would be a bug either way
        return f"{type(exc).__name__}: {exc}"


def summarise(result: object) -> object:
    if isinstance(result, Task):
        return (result.id, result.status, sorted(result.blockers), result.assigned_agent)
    if isinstance(result, list):
        return [summarise(r) for r in result]
    return result


@pytest.mark.parametrize("seed", range(20))
async def test_beads_and_the_reference_agree_on_random_work(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    ref = InMemoryTaskStore(retry_base_ms=0)
    async with ref, BeadsAdapter(tmp_path / "model.db", retry_base_ms=0) as beads:
        ids: list[str] = []
        for step in range(80):
            op = rng.choice(
                [
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
                ]
            )
            agent = rng.choice(["a1", "a2"])
            target = rng.choice(ids) if ids else None
            args: tuple[Any, ...] = ()
            kwargs: dict[str, Any] = {}
            if op == "create" or target is None:
                new_id = f"bd-{seed}-{step}"
                deps = rng.sample(ids, k=min(len(ids), rng.choice([0, 1, 1, 2])))
                name = "create_task"
                args = (
                    {
                        "id": new_id,
                        "title": new_id,
                        "dependencies": deps,
                        "max_retries": rng.choice([0, 0, 1]),
                    },
                )
                ids.append(new_id)
            elif op == "claim":
                name, args = "claim_task", (target, agent)
            elif op == "claim_next":
                name, args = "claim_next", (agent,)
            elif op == "complete":
                name, args = "complete_task", (target, agent)
            elif op == "fail":
                name, args = "fail_task", (target, agent, "boom")
            elif op == "release":
                name, args = "release_task", (target, agent)
            elif op == "start":
                name, args = "start_task", (target, agent)
            elif op == "update_status":
                status = rng.choice(["pending", "ready", "failed", "blocked", "completed"])
                name, args = "update_task", (target, {"status": status})
            elif op == "update_deps":
                deps = rng.sample(ids, k=min(len(ids), rng.choice([0, 1, 2])))
                name, args = "update_task", (target, {"dependencies": deps})
            else:
                blockers = rng.choice([[], ["needs a decision"]])
                name, args = "update_task", (target, {"blockers": blockers})
            got_ref = summarise(await call(ref, name, *args, **kwargs))
            got_beads = summarise(await call(beads, name, *args, **kwargs))
            assert got_beads == got_ref, (step, name, args)
            ref_tasks = await ref.list_tasks()
            beads_tasks = await beads.list_tasks()
            assert view(beads_tasks) == view(ref_tasks), (step, name, args)
            assert stranded(beads_tasks) == [], (step, name, args)
            ready_ref = [t.id for t in await ref.get_ready_tasks()]
            assert [t.id for t in await beads.get_ready_tasks()] == ready_ref
