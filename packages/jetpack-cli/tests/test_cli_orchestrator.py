"""The orchestrator's agent loop against the kit's reference stores (one process, fast)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jetpack.cli import (
    EventLog,
    ExecutionRequest,
    ExecutionResult,
    Orchestrator,
    OrchestratorSettings,
    ProgressEvent,
    StopReason,
)
from jetpack.cli._executors import ProgressHandler
from jetpack.cli._memory_writer import MemoryWriter
from jetpack.shared import FailureType, MemoryType, TaskStatus
from jetpack.shared.testing import (
    InMemoryMailBus,
    InMemoryMailHub,
    InMemoryMemoryStore,
    InMemoryTaskStore,
    eventually,
)


class Scripted:
    """An executor whose behaviour comes from the task's metadata ``script``."""

    name = "scripted"

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.prompts: dict[str, list[str]] = {}
        self.running: set[str] = set()
        self.max_parallel_per_task = 0
        self.cancelled: list[str] = []

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        task = request.task
        self.runs[task.id] += 1
        self.prompts.setdefault(task.id, []).append(request.prompt)
        assert task.id not in self.running, "the same task runs twice at once"
        self.running.add(task.id)
        script: dict[str, Any] = task.metadata.get("script", {})
        try:
            if on_progress:
                on_progress(ProgressEvent("step", "working"))
            await asyncio.sleep(script.get("seconds", 0.01))
            if script.get("raise"):
                raise RuntimeError("executor bug")
            if script.get("fatal"):
                return ExecutionResult(ok=False, error="refused", fatal=script["fatal"])
            if self.runs[task.id] <= script.get("fail_times", 0):
                return ExecutionResult(
                    ok=False, error=f"boom {self.runs[task.id]}", failure_type=FailureType.ERROR
                )
            return ExecutionResult(ok=True, summary=f"did {task.title}")
        except asyncio.CancelledError:
            self.cancelled.append(task.id)
            raise
        finally:
            self.running.discard(task.id)


class World:
    def __init__(self, tmp_path: Path, *, retry_base_ms: int = 50, claim_ttl_ms: int = 60_000):
        self.tasks = InMemoryTaskStore(retry_base_ms=retry_base_ms, claim_ttl_ms=claim_ttl_ms)
        self.hub = InMemoryMailHub()
        self.memory = InMemoryMemoryStore()
        self.tmp_path = tmp_path
        self.executor = Scripted()

    def bus(self, agent_id: str) -> InMemoryMailBus:
        return InMemoryMailBus(agent_id, hub=self.hub)

    def orchestrator(
        self, agents: int = 3, until_empty: bool = True, **settings: Any
    ) -> Orchestrator:
        base: dict[str, Any] = {"poll_s": 0.02, "heartbeat_s": 0.05, "shutdown_grace_s": 5.0}
        base.update(settings)
        return Orchestrator(
            tasks=self.tasks,
            memory=self.memory,
            mail_factory=self.bus,
            executor=self.executor,
            settings=OrchestratorSettings(**base),
            project_dir=self.tmp_path,
            agent_count=agents,
            until_empty=until_empty,
            events=EventLog(self.tmp_path / "events.jsonl"),
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_a_dependency_graph_runs_each_task_exactly_once(world: World) -> None:
    await world.tasks.create_tasks(
        [
            {"id": "a", "title": "A"},
            {"id": "b", "title": "B"},
            {"id": "c", "title": "C", "dependencies": ["a", "b"]},
            *[{"id": f"d{i}", "title": f"D{i}", "dependencies": ["c"]} for i in range(6)],
            {"id": "e", "title": "E", "dependencies": [f"d{i}" for i in range(6)]},
        ]
    )
    orch = world.orchestrator(agents=3)
    summary = await asyncio.wait_for(orch.run(), 20)
    assert sorted(summary.completed) == sorted(["a", "b", "c", "e", *[f"d{i}" for i in range(6)]])
    assert set(world.executor.runs.values()) == {1}
    assert orch.stop_reason is StopReason.DRAINED
    assert all(t.status is TaskStatus.COMPLETED for t in await world.tasks.list_tasks())
    kinds = Counter(e.kind for e in orch.events.recent)
    assert kinds["completed"] == 10 and kinds["started"] == 3 and kinds["stopped"] == 3
    assert (await world.memory.get_stats()).total == 10
    agents = {a.agent_id for a in world.hub.presence.values()}
    assert agents == {a.agent_id for a in orch.agents}
    assert all(not p.online or p.status == "offline" for p in world.hub.presence.values())
    task = await world.tasks.get_task("e")
    assert task is not None and task.metadata["result"]["agent_id"].startswith("agent-")
    logged = (world.tmp_path / "events.jsonl").read_text().splitlines()
    assert sum('"completed"' in line for line in logged) == 10


async def test_a_failed_attempt_retries_after_back_off_with_the_error_in_the_prompt(
    world: World,
) -> None:
    await world.tasks.create_task(
        {"id": "flaky", "title": "Flaky", "metadata": {"script": {"fail_times": 1}}}
    )
    orch = world.orchestrator(agents=1)
    summary = await asyncio.wait_for(orch.run(), 20)
    assert summary.completed == ["flaky"] and summary.retried == ["flaky"]
    assert world.executor.runs["flaky"] == 2
    second = world.executor.prompts["flaky"][1]
    assert "Previous attempt failed" in second and "boom 1" in second
    memories = await world.memory.search("flaky failed", 10)
    assert any("failed (error): boom 1" in m.content for m in memories)
    task = await world.tasks.get_task("flaky")
    assert task is not None and task.retry_count == 1


async def test_permanent_failure_blocks_dependants_and_the_run_still_drains(
    world: World,
) -> None:
    await world.tasks.create_tasks(
        [
            {
                "id": "bad",
                "title": "Bad",
                "max_retries": 0,
                "metadata": {"script": {"fail_times": 9}},
            },
            {"id": "after", "title": "After", "dependencies": ["bad"]},
            {"id": "free", "title": "Free", "blockers": ["waiting for legal"]},
        ]
    )
    summary = await asyncio.wait_for(world.orchestrator(agents=2).run(), 20)
    assert summary.failed == ["bad"] and summary.completed == []
    after = await world.tasks.get_task("after")
    assert after is not None and after.status is TaskStatus.BLOCKED


async def test_verify_command_failure_fails_the_task(world: World) -> None:
    await world.tasks.create_task(
        {
            "id": "v",
            "title": "V",
            "max_retries": 0,
            "metadata": {"verify": "echo 3 tests failed; exit 1"},
        }
    )
    summary = await asyncio.wait_for(world.orchestrator(agents=1).run(), 20)
    assert summary.failed == ["v"]
    task = await world.tasks.get_task("v")
    assert task is not None and "verification" in (task.last_error or "")
    assert "3 tests failed" in (task.last_error or "")
    analyses = await world.memory.get_by_type(MemoryType.TEST_FAILURE_ANALYSIS)
    assert len(analyses) == 1


async def test_verify_command_success_is_recorded(world: World) -> None:
    await world.tasks.create_task({"id": "v", "title": "V"})
    orch = world.orchestrator(agents=1, verify_command="test -d .")
    assert (await asyncio.wait_for(orch.run(), 20)).completed == ["v"]


async def test_an_executor_exception_fails_the_attempt_instead_of_stranding_it(
    world: World,
) -> None:
    await world.tasks.create_task(
        {"id": "x", "title": "X", "max_retries": 0, "metadata": {"script": {"raise": True}}}
    )
    summary = await asyncio.wait_for(world.orchestrator(agents=1).run(), 20)
    task = await world.tasks.get_task("x")
    assert task is not None and task.status is TaskStatus.FAILED
    assert "executor bug" in (task.last_error or "")
    assert summary.completed == []


async def test_stop_hands_running_tasks_back_without_using_a_retry(world: World) -> None:
    await world.tasks.create_tasks(
        [
            {"id": f"t{i}", "title": f"T{i}", "metadata": {"script": {"seconds": 30}}}
            for i in range(2)
        ]
    )
    orch = world.orchestrator(agents=2, until_empty=False, shutdown_grace_s=0.2)
    run = asyncio.create_task(orch.run())
    assert await eventually(lambda: len(world.executor.running) == 2, 5)
    orch.request_stop()
    summary = await asyncio.wait_for(run, 10)
    assert sorted(summary.interrupted) == ["t0", "t1"]
    assert orch.stop_reason is StopReason.REQUESTED
    assert sorted(world.executor.cancelled) == ["t0", "t1"]
    for task in await world.tasks.list_tasks():
        assert task.status in (TaskStatus.READY, TaskStatus.PENDING)
        assert task.retry_count == 0 and task.assigned_agent is None
    assert any(e.kind == "interrupted" for e in orch.events.recent)


async def test_the_grace_period_lets_running_tasks_finish(world: World) -> None:
    await world.tasks.create_task(
        {"id": "s", "title": "S", "metadata": {"script": {"seconds": 0.5}}}
    )
    orch = world.orchestrator(agents=1, until_empty=False, shutdown_grace_s=5)
    run = asyncio.create_task(orch.run())
    assert await eventually(lambda: "s" in world.executor.running, 5)
    orch.request_stop()
    summary = await asyncio.wait_for(run, 10)
    assert summary.completed == ["s"] and summary.interrupted == []


async def test_force_stop_skips_the_grace_period(world: World) -> None:
    await world.tasks.create_task(
        {"id": "s", "title": "S", "metadata": {"script": {"seconds": 30}}}
    )
    orch = world.orchestrator(agents=1, until_empty=False, shutdown_grace_s=60)
    run = asyncio.create_task(orch.run())
    assert await eventually(lambda: "s" in world.executor.running, 5)
    orch.request_stop()
    await asyncio.sleep(0.1)
    orch.force_stop()
    summary = await asyncio.wait_for(run, 5)
    assert summary.interrupted == ["s"]


async def test_claims_are_renewed_while_a_long_task_runs(tmp_path: Path) -> None:
    world = World(tmp_path, claim_ttl_ms=300)
    await world.tasks.create_task(
        {"id": "long", "title": "Long", "metadata": {"script": {"seconds": 1.2}}}
    )
    orch = world.orchestrator(agents=1, claim_ttl_ms=300)
    run = asyncio.create_task(orch.run())
    assert await eventually(lambda: "long" in world.executor.running, 5)
    for _ in range(8):  # a rival keeps trying to take it while it runs
        assert await world.tasks.claim_next("rival") is None
        assert not await world.tasks.recover_expired_claims()
        await asyncio.sleep(0.15)
    summary = await asyncio.wait_for(run, 10)
    assert summary.completed == ["long"] and world.executor.runs["long"] == 1


async def test_a_lost_claim_stops_the_attempt(tmp_path: Path) -> None:
    world = World(tmp_path, claim_ttl_ms=200)
    await world.tasks.create_task(
        {"id": "t", "title": "T", "metadata": {"script": {"seconds": 30}}}
    )
    # Renewal period is a third of claim_ttl_ms; the store's TTL is shorter, so the claim lapses.
    orch = world.orchestrator(agents=1, until_empty=False, claim_ttl_ms=3000)
    orch.settings.claim_ttl_ms = 3000
    run = asyncio.create_task(orch.run())
    assert await eventually(lambda: "t" in world.executor.running, 5)
    task = await world.tasks.get_task("t")
    assert task is not None
    await world.tasks.recover_expired_claims()  # nothing lapsed yet (ttl 3 s)
    # Steal it the way a crashed-run recovery would, after forcing the claim to lapse.
    world.tasks._tasks["t"] = task.model_copy(update={"claim_expires_at": task.created_at})
    assert [t.id for t in await world.tasks.recover_expired_claims()] == ["t"]
    assert await world.tasks.claim_next("rival", ttl_ms=60_000) is not None
    assert await eventually(lambda: any(e.kind == "claim_lost" for e in orch.events.recent), 5)
    assert world.executor.cancelled == ["t"]
    orch.request_stop()
    await asyncio.wait_for(run, 5)
    final = await world.tasks.get_task("t")
    assert final is not None and final.assigned_agent == "rival"


async def test_a_leased_file_makes_the_agent_wait_then_hand_the_task_back(world: World) -> None:
    await world.tasks.create_task({"id": "t", "title": "Edit src/app.py"})
    async with world.bus("other-agent") as other:
        assert await other.acquire_lease("src/app.py", 60_000)
        orch = world.orchestrator(agents=1, until_empty=False, lease_wait_s=0.3, poll_s=0.05)
        run = asyncio.create_task(orch.run())
        assert await eventually(lambda: any(e.kind == "released" for e in orch.events.recent), 5)
        assert world.executor.runs["t"] == 0
        task = await world.tasks.get_task("t")
        assert task is not None and task.retry_count == 0
        await other.release_lease("src/app.py")
        assert await eventually(lambda: world.executor.runs["t"] == 1, 5)
        orch.request_stop()
        summary = await asyncio.wait_for(run, 5)
    assert summary.completed == ["t"]
    assert any(e.kind == "lease_wait" for e in orch.events.recent)


async def test_prompt_holds_memories_and_others_leases(world: World) -> None:
    await world.memory.store(
        {
            "type": MemoryType.CODEBASE_KNOWLEDGE,
            "content": "The parser lives in parser.py and uses recursion",
        }
    )
    await world.tasks.create_task(
        {"id": "p", "title": "Fix the parser recursion", "metadata": {"files": ["src/parser.py"]}}
    )
    async with world.bus("other-agent") as other:
        await other.acquire_lease("docs/**", 60_000)
        await asyncio.wait_for(world.orchestrator(agents=1).run(), 20)
    prompt = world.executor.prompts["p"][0]
    assert "parser.py and uses recursion" in prompt
    assert "docs/** (other-agent)" in prompt
    assert "Files leased to you" in prompt and "src/parser.py" in prompt


async def test_memory_writer_batches_and_drops_only_a_bad_entry() -> None:
    store = InMemoryMemoryStore()
    writer = MemoryWriter(store, batch=3, delay_s=0.05)
    for i in range(4):
        writer.add({"type": "agent_learning", "content": f"lesson {i}"})
    writer.add({"type": "agent_learning", "content": "bad", "importance": 2.0})
    assert await eventually(lambda: writer.written == 4, 5)
    await writer.close()
    assert writer.written == 4 and (await store.get_stats()).total == 4


async def test_a_running_attempt_is_marked_in_progress(world: World) -> None:
    await world.tasks.create_task(
        {"id": "s", "title": "S", "metadata": {"script": {"seconds": 0.8}}}
    )
    run = asyncio.create_task(world.orchestrator(agents=1).run())

    async def in_progress() -> bool:
        task = await world.tasks.get_task("s")
        return task is not None and task.status is TaskStatus.IN_PROGRESS

    assert await eventually(in_progress, 5)
    assert (await asyncio.wait_for(run, 10)).completed == ["s"]


async def test_a_run_error_hands_the_task_back_and_stops_the_run(world: World) -> None:
    ids = [
        (await world.tasks.create_task({"title": f"T{i}", "metadata": {"script": script}})).id
        for i, script in enumerate([{"fatal": "not logged in: log in"}] * 4)
    ]
    orch = world.orchestrator(agents=2, until_empty=False)
    summary = await asyncio.wait_for(orch.run(), 30)
    assert summary.fatal == "not logged in: log in"
    assert orch.stop_reason is StopReason.FATAL
    assert summary.completed == [] and summary.failed == [] and summary.retried == []
    assert sum(world.executor.runs.values()) <= 2  # no agent claimed after the first error
    for task_id in ids:
        task = await world.tasks.get_task(task_id)
        assert task is not None and task.retry_count == 0
        assert task.status in (TaskStatus.PENDING, TaskStatus.READY)
