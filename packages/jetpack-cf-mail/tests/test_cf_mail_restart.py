"""Restart workerd on the same persist folder: leases and unacknowledged direct mail survive,
and the buses reconnect by themselves. Retention and presence expiry by the mailbox's alarm."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jetpack.cf_mail import RETENTION_FEATURE, CloudflareMailBus
from jetpack.shared import AgentStatus, Message, MessageType
from jetpack.shared.edge import BuildOptions
from jetpack.shared.testing import eventually
from jetpack.shared.testing.edge import EdgeWorker

FAST = {"reconnect_base_ms": 100, "reconnect_max_ms": 1000}


async def test_state_survives_a_restart_and_buses_reconnect_by_themselves(tmp_path: Path) -> None:
    worker = EdgeWorker.start(tmp_path)
    try:
        project = worker.new_project()
        got: list[int] = []
        late: list[str] = []
        sub = CloudflareMailBus("sub", project.url, project.token, **FAST)
        sub.subscribe(MessageType.TASK_PROGRESS, lambda m: got.append(m.payload["i"]))
        async with sub, CloudflareMailBus("pub", project.url, project.token, **FAST) as pub:
            lease = await pub.grant_lease("src/auth/**", 600_000)
            kept = await pub.send_to("sub", MessageType.COORDINATION_REQUEST, {"q": 1})
            waiting = await pub.send_to("away", MessageType.COORDINATION_REQUEST, {"q": 2})
            await pub.publish(MessageType.TASK_PROGRESS, {"i": 0})
            assert await eventually(lambda: got == [0])

            await asyncio.to_thread(worker.stop)
            assert await eventually(lambda: not pub.connected and not sub.connected)
            queued = await pub.publish(MessageType.TASK_PROGRESS, {"i": 1})  # while it is down
            assert queued.seq is None
            await asyncio.to_thread(worker.server.start)

            assert await eventually(lambda: pub.connected and sub.connected, timeout=60)
            assert await eventually(lambda: got == [0, 1], timeout=30), got
            await pub.publish(MessageType.TASK_PROGRESS, {"i": 2})
            assert await eventually(lambda: got == [0, 1, 2])

            status = await sub.is_leased("src/auth/session.py")
            assert status.is_leased and status.agent_id == "pub"
            assert status.fencing_token == lease.fencing_token
            assert not await sub.acquire_lease("src/auth/x.py", 10_000)
            newer = await pub.grant_lease("docs/**", 10_000)
            assert newer.fencing_token > lease.fencing_token, "the fencing counter went back"
            assert [m.id for m in await sub.fetch_inbox()] == [kept.id]

        away = CloudflareMailBus("away", project.url, project.token, **FAST)
        away.subscribe(MessageType.COORDINATION_REQUEST, lambda m: late.append(m.id))
        async with away:
            assert await eventually(lambda: late == [waiting.id])
            await asyncio.sleep(0.3)
            assert late == [waiting.id]
    finally:
        worker.stop()


async def test_retention_and_presence_expiry_by_alarm(tmp_path: Path) -> None:
    """A mailbox built to keep messages 1.5 s: its alarm deletes old mail and presence."""
    options = BuildOptions(features={RETENTION_FEATURE: 1500}, observability=False)
    worker = EdgeWorker.start(tmp_path, options)
    try:
        project = worker.new_project()
        async with (
            CloudflareMailBus("a", project.url, project.token) as a,
            CloudflareMailBus("b", project.url, project.token) as b,
        ):
            sent = await a.send_to("b", MessageType.COORDINATION_REQUEST, {"n": 1})
            await b.send_heartbeat(AgentStatus.BUSY)
            assert [m.id for m in await b.fetch_inbox()] == [sent.id]
            assert [p.agent_id for p in await a.list_agents(include_offline=True)] == ["b"]

            async def swept() -> bool:
                inbox = await b.fetch_inbox(include_acked=True)
                agents = await a.list_agents(include_offline=True)
                return inbox == [] and agents == []

            assert await eventually(swept, timeout=20)
            fresh = await a.send_to("b", MessageType.COORDINATION_REQUEST, {"n": 2})
            assert [m.id for m in await b.fetch_inbox()] == [fresh.id]
            message: Message = fresh
            assert message.seq is not None and sent.seq is not None and message.seq > sent.seq
    finally:
        worker.stop()
