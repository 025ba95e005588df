"""The three local backends, found through the registry, working together.

This is how the CLI composes stores: config → entry points → adapters.
"""

from __future__ import annotations

from pathlib import Path

from jetpack.shared import AgentStatus, MemoryType, TaskStatus
from jetpack.shared.config import load_config
from jetpack.shared.registry import create_adapters, discover_backends


def test_local_backends_are_registered() -> None:
    names = {b.name: b.distribution for b in discover_backends()}
    assert names["tasks.local"] == "jetpack-beads"
    assert names["mail.local"] == "jetpack-mcp-mail"
    assert names["memory.local"] == "jetpack-cass"


async def test_a_task_round_trip_through_all_three_stores(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    async with create_adapters(config, agent_id="agent-1") as stores:
        dep = await stores.tasks.create_task({"title": "schema", "priority": "high"})
        task = await stores.tasks.create_task({"title": "api", "dependencies": [dep.id]})

        claimed = await stores.tasks.claim_next("agent-1")
        assert claimed is not None and claimed.id == dep.id
        assert await stores.mail.acquire_lease("src/schema.sql", 60_000)
        await stores.mail.send_heartbeat(AgentStatus.BUSY, {"task": dep.id})
        await stores.tasks.complete_task(dep.id, "agent-1")
        await stores.mail.publish("task.completed", {"task_id": dep.id})
        assert await stores.mail.release_lease("src/schema.sql")
        await stores.memory.store(
            {"type": MemoryType.SUCCESSFUL_FIX, "content": f"{dep.id}: schema migrated with WAL"}
        )

        ready = await stores.tasks.get_ready_tasks()
        assert [t.id for t in ready] == [task.id]
        hits = await stores.memory.search(dep.id)
        assert hits and dep.id in hits[0].content
        agents = await stores.mail.list_agents()
        assert [a.agent_id for a in agents] == ["agent-1"]

    # Files are where the config says, and a second open sees the same state.
    assert (tmp_path / ".beads" / "beads.db").exists()
    assert (tmp_path / ".cass" / "memories.db").exists()
    assert (tmp_path / ".mail").is_dir()
    async with create_adapters(load_config(tmp_path, env={}), agent_id="agent-2") as again:
        done = await again.tasks.get_task(dep.id)
        assert done is not None and done.status is TaskStatus.COMPLETED
