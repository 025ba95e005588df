"""``jetpack status --watch`` keeps its view current from the mail bus (real local stores)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jetpack.cli._status import StatusWatch
from jetpack.shared import AgentStatus, MessageType
from jetpack.shared.config import load_config
from jetpack.shared.registry import create_store
from jetpack.shared.testing import eventually


async def test_the_watch_follows_heartbeats_and_task_messages_without_polling(
    tmp_path: Path,
) -> None:
    config = load_config(tmp_path, env={})
    async with (
        create_store(config, "tasks") as tasks,
        create_store(config, "mail", agent_id="agent-elsewhere-1") as other,
    ):
        viewer_bus = create_store(config, "mail", agent_id="cli-status-test")
        watcher = StatusWatch(tasks, viewer_bus, refresh_s=3600)
        watcher.attach()
        async with viewer_bus:
            runner = asyncio.create_task(watcher.run())
            try:
                assert await eventually(lambda: watcher.status is not None)
                assert watcher.reads == 1
                await other.send_heartbeat(
                    AgentStatus.IDLE, {"run_id": "r2", "host": "ci-runner", "heartbeat_s": 10}
                )
                assert await eventually(
                    lambda: any(
                        a.agent_id == "agent-elsewhere-1" and a.info.get("host") == "ci-runner"
                        for a in (watcher.status.agents if watcher.status else [])
                    )
                )
                assert watcher.reads == 1, "presence came from the bus, not a re-read"

                task = await tasks.create_task({"title": "Elsewhere"})
                claimed = await tasks.claim_next("agent-elsewhere-1")
                assert claimed is not None and claimed.id == task.id
                assert await other.acquire_lease("src/app.py", 60_000)
                await other.publish(MessageType.TASK_CLAIMED, {"task_id": task.id, "title": "x"})
                assert await eventually(
                    lambda: (
                        watcher.status is not None
                        and [t.id for t in watcher.status.held] == [task.id]
                        and [le.path for le in watcher.status.leases] == ["src/app.py"]
                    )
                )
                shown = watcher.status
                assert shown is not None
                agent = next(
                    a
                    for a in shown.reconciled("cli-status-test")
                    if a.agent_id == "agent-elsewhere-1"
                )
                assert agent.status is AgentStatus.BUSY and agent.info["task_id"] == task.id
                assert agent.info["leases"] == ["src/app.py"]
                assert any(e["kind"] == "task.claimed" for e in shown.events)

                await other.publish(MessageType.AGENT_STOPPED, {"run_id": "r2"})
                assert await eventually(
                    lambda: (
                        watcher.status is not None
                        and all(a.agent_id != "agent-elsewhere-1" for a in watcher.status.agents)
                    )
                )
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
