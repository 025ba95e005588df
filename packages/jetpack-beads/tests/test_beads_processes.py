"""Real OS processes on one database file: claim races and SIGKILL crashes."""

import asyncio
import signal
import sqlite3
from pathlib import Path

from jetpack.beads import BeadsAdapter
from jetpack.shared import FailureType, TaskStatus, utcnow
from jetpack.shared.testing import Child, ChildLink, run_children

# -- workers (each runs in its own process) ----------------------------------------


async def claim_all(link: ChildLink, db_path: str, agent: str) -> list[str]:
    """Open the store, wait for the others, then claim until the queue is empty."""
    async with BeadsAdapter(db_path) as store:
        await link.ready()
        claimed = []
        while (task := await store.claim_next(agent)) is not None:
            claimed.append(task.id)
        return claimed


async def claim_and_hold(link: ChildLink, db_path: str, agent: str, ttl_ms: int) -> None:
    """Claim one task, report its id, then hold it until killed."""
    async with BeadsAdapter(db_path) as store:
        await link.ready()
        task = await store.claim_next(agent, ttl_ms=ttl_ms)
        link.report(task.id if task else None)
        await link.until_stopped()


async def create_forever(link: ChildLink, db_path: str, agent: str) -> None:
    """Create batches of 10 tasks, reporting the running total after each commit."""
    async with BeadsAdapter(db_path) as store:
        await link.ready()
        total = 0
        while True:
            await store.create_tasks([{"title": f"{agent}-{total + i}"} for i in range(10)])
            total += 10
            link.report(total)


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


# -- tests -----------------------------------------------------------------------------


async def test_four_processes_claim_each_task_exactly_once(
    store: BeadsAdapter, db_path: Path
) -> None:
    made = await store.create_tasks([{"title": f"t{i}"} for i in range(200)])
    agents = [f"proc-{i}" for i in range(4)]
    lists = await asyncio.to_thread(
        run_children, claim_all, [(str(db_path), agent) for agent in agents]
    )
    results = dict(zip(agents, lists, strict=True))
    claimed = [task_id for ids in results.values() for task_id in ids]
    assert len(claimed) == len(set(claimed)) == 200  # no double claims, none missed
    assert set(claimed) == {t.id for t in made}
    for agent, ids in results.items():
        for task_id in ids:
            task = await store.get_task(task_id)
            assert task is not None
            assert task.status is TaskStatus.CLAIMED and task.assigned_agent == agent
    assert sum(1 for ids in results.values() if ids) >= 2  # they really raced


async def test_sigkilled_holder_loses_its_claim_after_the_ttl(
    store: BeadsAdapter, db_path: Path
) -> None:
    victim = await store.create_task({"title": "victim", "priority": "critical"})
    others = await store.create_tasks([{"title": f"other {i}"} for i in range(4)])
    with Child(claim_and_hold, str(db_path), "agent-doomed", 3_000) as child:
        await asyncio.to_thread(child.wait_ready)
        child.go()
        assert await asyncio.to_thread(child.next_report) == victim.id
        assert child.kill() == -signal.SIGKILL

    held = await store.get_task(victim.id)
    assert held is not None and held.assigned_agent == "agent-doomed"
    assert held.claim_expires_at is not None
    first = await store.claim_next("agent-2")
    assert first is not None
    if utcnow() < held.claim_expires_at:  # the claim had not lapsed when that claim ran
        assert first.id != victim.id
        await asyncio.sleep((held.claim_expires_at - utcnow()).total_seconds() + 0.05)
        taken = await store.claim_next("agent-2")
    else:  # a very loaded machine: the claim lapsed first, and the victim went first
        taken = first
    assert taken is not None and taken.id == victim.id
    assert taken.assigned_agent == "agent-2"
    assert taken.retry_count == 1 and taken.failure_type is FailureType.STALLED
    # Nothing else was touched or lost.
    rest = {t.id: t for t in await store.list_tasks()}
    assert len(rest) == 5
    claimed = {first.id, taken.id}
    untouched = [rest[t.id] for t in others if t.id not in claimed]
    assert all(t.status is TaskStatus.READY and t.version == 1 for t in untouched)
    assert integrity(db_path) == "ok"


async def test_sigkill_during_writes_keeps_whole_transactions(
    store: BeadsAdapter, db_path: Path
) -> None:
    with Child(create_forever, str(db_path), "writer") as child:
        await asyncio.to_thread(child.wait_ready)
        child.go()
        seen = 0
        while seen < 200:
            seen = await asyncio.to_thread(child.next_report)
        assert child.kill() == -signal.SIGKILL
    total = (await store.get_stats()).total
    assert total >= seen and total % 10 == 0  # every batch is all or nothing
    assert integrity(db_path) == "ok"
    with sqlite3.connect(db_path) as conn:  # the dependency index stayed consistent
        assert conn.execute("SELECT count(*) FROM task_deps").fetchone()[0] == 0
    more = await store.create_task({"title": "after the crash"})
    assert (await store.get_task(more.id)) == more
