"""Restart workerd on the same persist folder: tasks, live claims and tokens are all still there."""

from __future__ import annotations

from pathlib import Path

from jetpack.cf_beads import CloudflareTaskStore
from jetpack.shared import TaskStatus
from jetpack.shared.testing.edge import EdgeWorker


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    worker = EdgeWorker.start(tmp_path)
    try:
        project = worker.new_project()
        async with CloudflareTaskStore(project.url, project.token) as store:
            root = await store.create_task({"title": "root", "priority": "high"})
            child = await store.create_task({"title": "child", "dependencies": [root.id]})
            spare = await store.create_task({"title": "spare", "priority": "low"})
            claimed = await store.claim_task(root.id, "agent-1", ttl_ms=600_000)
            assert claimed is not None
            before = [await store.get_task(t.id) for t in (root, child, spare)]
        worker.restart()
        async with CloudflareTaskStore(project.url, project.token) as store:
            after = [await store.get_task(t.id) for t in (root, child, spare)]
            assert after == before
            assert [t.id for t in await store.get_tasks_by_agent("agent-1")] == [root.id]
            assert await store.claim_task(root.id, "agent-2") is None, "the live claim was lost"
            await store.complete_task(root.id, "agent-1")
            nxt = await store.claim_next("agent-2")
            assert nxt is not None and nxt.id == child.id, "the dependant became ready"
            stats = await store.get_stats()
            assert stats.total == 3 and stats.by_status[TaskStatus.COMPLETED] == 1
    finally:
        worker.stop()
