"""Idle agents wait for mail, not a claim a second; until-empty across runs (reference stores)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from jetpack.cli import EventLog, InstantExecutor, Orchestrator, OrchestratorSettings, StopReason
from jetpack.cli._wakeups import WorkSignal
from jetpack.shared import AgentStatus, MessageType, Task, TaskStatus
from jetpack.shared.testing import InMemoryMailBus, InMemoryMailHub, InMemoryTaskStore, eventually


class CountingTaskStore(InMemoryTaskStore):
    """The reference store, counting the claims made (what an idle agent costs)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.claims = 0

    async def claim_next(
        self, agent_id: str, skills: Sequence[str] | None = None, *, ttl_ms: int | None = None
    ) -> Task | None:
        self.claims += 1
        return await super().claim_next(agent_id, skills, ttl_ms=ttl_ms)


def orchestrator(
    tasks: InMemoryTaskStore,
    hub: InMemoryMailHub,
    tmp_path: Path,
    *,
    agents: int = 4,
    until_empty: bool = False,
    **settings: Any,
) -> Orchestrator:
    base: dict[str, Any] = {"poll_s": 30.0, "heartbeat_s": 0.1, "idle_heartbeat_s": 0.2}
    base.update(settings)
    return Orchestrator(
        tasks=tasks,
        memory=None,
        mail_factory=lambda agent_id: InMemoryMailBus(agent_id, hub=hub),
        executor=InstantExecutor(),
        settings=OrchestratorSettings(**base),
        project_dir=tmp_path,
        agent_count=agents,
        until_empty=until_empty,
        events=EventLog(None),
    )


@contextlib.asynccontextmanager
async def running(orch: Orchestrator) -> AsyncIterator[asyncio.Task[Any]]:
    run = asyncio.create_task(orch.run())
    try:
        yield run
    finally:
        orch.request_stop()
        await asyncio.wait_for(run, 10)


async def settle(tasks: CountingTaskStore, quiet_s: float = 0.3) -> int:
    """Wait until no claim was made for ``quiet_s``; the claim count then."""
    while True:
        before = tasks.claims
        await asyncio.sleep(quiet_s)
        if tasks.claims == before:
            return before


async def test_one_new_task_costs_one_claim_or_two_not_one_per_idle_agent(tmp_path: Path) -> None:
    tasks, hub = CountingTaskStore(), InMemoryMailHub()
    async with (
        InMemoryMailBus("cli", hub=hub) as cli,
        running(orchestrator(tasks, hub, tmp_path, agents=4)) as _,
    ):
        start = await settle(tasks)
        assert start == 4  # each agent looked once, found nothing, and waits
        await asyncio.sleep(1.0)
        assert tasks.claims == start, "idle agents polled"

        one = await tasks.create_task({"title": "One"})
        await cli.publish(MessageType.TASK_CREATED, {"task_id": one.id})
        assert await eventually(lambda: _done(tasks, one.id))
        after_one = await settle(tasks)
        assert after_one - start <= 3, (
            after_one - start
        )  # the woken agent, and the one it passes on to

        batch = await tasks.create_tasks([{"title": f"B{i}"} for i in range(12)])
        await cli.publish(MessageType.TASK_CREATED, {"count": len(batch)})
        assert await eventually(lambda: _done(tasks, *(t.id for t in batch)))
        # 12 successful claims plus, at most, one empty look per agent.
        assert await settle(tasks) - after_one <= 12 + 4


async def test_the_fallback_claim_finds_work_that_came_without_a_message(tmp_path: Path) -> None:
    tasks, hub = CountingTaskStore(), InMemoryMailHub()
    async with running(orchestrator(tasks, hub, tmp_path, agents=4, poll_s=0.4)):
        start = await settle(tasks, 0.1)
        silent = await tasks.create_task({"title": "Written by another tool"})
        assert await eventually(lambda: _done(tasks, silent.id), timeout=3)
        before = tasks.claims
        await asyncio.sleep(2.0)
        # One claim per fallback period for the whole run (not one per agent).
        assert tasks.claims - before <= 2.0 / 0.4 + 1
        assert start == 4


async def test_a_retry_wakes_the_run_when_its_back_off_ends(tmp_path: Path) -> None:
    tasks, hub = CountingTaskStore(retry_base_ms=600), InMemoryMailHub()
    await tasks.create_task({"id": "flaky", "title": "Flaky"})
    held = await tasks.claim_next("agent-other-1")
    assert held is not None
    async with (
        InMemoryMailBus("agent-other-1", hub=hub) as other,
        running(orchestrator(tasks, hub, tmp_path, agents=2)),
    ):
        await settle(tasks, 0.1)
        failed = await tasks.fail_task("flaky", "agent-other-1", "boom")
        assert failed.not_before is not None
        await other.publish(
            MessageType.TASK_RETRY_SCHEDULED,
            {"task_id": "flaky", "not_before": failed.not_before.isoformat()},
        )
        started = time.monotonic()
        assert await eventually(lambda: _done(tasks, "flaky"), timeout=5)
        assert 0.4 <= time.monotonic() - started < 2.5


async def test_until_empty_leaves_a_live_holders_task_to_it(tmp_path: Path) -> None:
    tasks, hub = CountingTaskStore(), InMemoryMailHub()
    await tasks.create_tasks([{"id": "theirs", "title": "Long"}, {"id": "mine", "title": "Mine"}])
    assert await tasks.claim_task("theirs", "agent-live-1", ttl_ms=60_000) is not None
    async with InMemoryMailBus("agent-live-1", hub=hub) as live:

        async def beat() -> None:
            while True:
                await live.send_heartbeat(AgentStatus.BUSY, {"heartbeat_s": 0.2})
                await asyncio.sleep(0.2)

        beating = asyncio.create_task(beat())
        try:
            orch = orchestrator(tasks, hub, tmp_path, agents=2, until_empty=True)
            started = time.monotonic()
            summary = await asyncio.wait_for(orch.run(), 10)
        finally:
            beating.cancel()
    assert summary.completed == ["mine"]
    assert orch.stop_reason is StopReason.DRAINED
    assert time.monotonic() - started < 3  # about one of the holder's heartbeat periods
    theirs = await tasks.get_task("theirs")
    assert theirs is not None and theirs.status is TaskStatus.CLAIMED


async def test_until_empty_retakes_a_gone_holders_task_when_its_claim_lapses(
    tmp_path: Path,
) -> None:
    tasks, hub = CountingTaskStore(), InMemoryMailHub()
    await tasks.create_task({"id": "orphan", "title": "Held by a dead run"})
    assert await tasks.claim_task("orphan", "agent-dead-1", ttl_ms=1_500) is not None
    async with InMemoryMailBus("agent-dead-1", hub=hub) as dead:
        # It heartbeat once (still "online" for the presence window), then died.
        await dead.send_heartbeat(AgentStatus.BUSY, {"heartbeat_s": 0.2})
    orch = orchestrator(tasks, hub, tmp_path, agents=2, until_empty=True)
    started = time.monotonic()
    summary = await asyncio.wait_for(orch.run(), 15)
    assert summary.completed == ["orphan"]
    assert time.monotonic() - started >= 1.0  # it waited for the lapse, not before
    assert orch.drain.looks < 20, orch.drain.looks


async def _done(tasks: InMemoryTaskStore, *task_ids: str) -> bool:
    for task_id in task_ids:
        task = await tasks.get_task(task_id)
        if task is None or task.status is not TaskStatus.COMPLETED:
            return False
    return True


async def test_a_kick_while_a_claim_is_in_flight_is_not_lost() -> None:
    signal = WorkSignal(fallback_s=30)
    signal.start()
    try:
        since = signal.generation
        signal.kick()  # arrives between the claim and the wait
        await asyncio.wait_for(signal.wait(since), 1)
        waiter = asyncio.create_task(signal.wait(signal.generation))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        signal.kick()
        await asyncio.wait_for(waiter, 1)
    finally:
        await signal.close()


def test_the_fallback_claim_follows_where_the_task_store_is(tmp_path: Path) -> None:
    from jetpack.cli._settings import LOCAL_POLL_S, load_settings
    from jetpack.shared.config import load_config

    local = load_settings(load_config(tmp_path, env={}))
    edge = load_settings(load_config(tmp_path, env={"JETPACK_MODE": "edge"}))
    edge_tasks = load_settings(load_config(tmp_path, env={"JETPACK_TASKS_BACKEND": "cloudflare"}))
    edge_mail_only = load_settings(
        load_config(tmp_path, env={"JETPACK_MAIL_BACKEND": "cloudflare"})
    )
    assert local.orchestrator.poll_s == LOCAL_POLL_S == edge_mail_only.orchestrator.poll_s
    assert edge.orchestrator.poll_s == edge_tasks.orchestrator.poll_s == 60.0
    (tmp_path / ".jetpack").mkdir()
    (tmp_path / ".jetpack" / "config.toml").write_text("[orchestrator]\npoll_s = 7.5\n")
    assert load_settings(load_config(tmp_path, env={})).orchestrator.poll_s == 7.5
    chosen = load_settings(load_config(tmp_path, env={"JETPACK_MODE": "edge"}))
    assert chosen.orchestrator.poll_s == 7.5
