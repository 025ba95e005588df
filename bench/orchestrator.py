"""Orchestrator throughput: 1,000 tasks, 8 agents, an instant executor, real local stores.

Usage: hatch run python bench/orchestrator.py [--tasks 1000] [--agents 8] [--no-memory]

Prints, from one run:
- bare store: 8 workers doing only ``claim_next`` + ``complete_task`` on the same
  kind of store (a fresh database with the same tasks): tasks/s and ms per task;
- orchestrator: the full agent loop (claim, start, prompt with memory search and
  leases, execute, complete, memory record, events, heartbeats): tasks/s and ms per task;
- overhead per task = orchestrator ms per task - bare ms per task (wall time, 8-way).

Targets (issue 6): >= 100 tasks/s and <= 10 ms overhead per task.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from jetpack.cli import EventLog, InstantExecutor, Orchestrator, OrchestratorSettings
from jetpack.shared import TaskStatus
from jetpack.shared.config import CONFIG_FILE, dump_toml, load_config
from jetpack.shared.registry import create_store


def make_project(root: Path) -> Any:
    (root / CONFIG_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(dump_toml({"mode": "local"}), encoding="utf-8")
    return load_config(root, env={})


def task_inputs(n: int) -> list[dict[str, Any]]:
    return [{"title": f"Bench task {i}", "description": f"Do thing number {i}"} for i in range(n)]


async def bare(root: Path, n: int, workers: int) -> float:
    config = make_project(root)
    async with create_store(config, "tasks") as tasks:
        await tasks.create_tasks(task_inputs(n))

        async def worker(k: int) -> None:
            agent = f"bare-{k}"
            while True:
                task = await tasks.claim_next(agent)
                if task is None:
                    return
                await tasks.complete_task(task.id, agent)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(workers)))
        elapsed = time.perf_counter() - started
        stats = await tasks.get_stats()
        assert stats.by_status[TaskStatus.COMPLETED] == n, stats
    return elapsed


async def orchestrated(root: Path, n: int, agents: int, memory: bool) -> float:
    config = make_project(root)
    async with create_store(config, "tasks") as tasks:
        await tasks.create_tasks(task_inputs(n))
        memory_store = create_store(config, "memory") if memory else None
        if memory_store is not None:
            await memory_store.__aenter__()
        try:
            orch = Orchestrator(
                tasks=tasks,
                memory=memory_store,
                mail_factory=lambda agent_id: create_store(config, "mail", agent_id=agent_id),
                executor=InstantExecutor(),
                settings=OrchestratorSettings(poll_s=0.02, heartbeat_s=5.0),
                project_dir=root,
                agent_count=agents,
                until_empty=True,
                events=EventLog(root / ".jetpack" / "events.jsonl"),
            )
            started = time.perf_counter()
            summary = await orch.run()
            elapsed = time.perf_counter() - started
        finally:
            if memory_store is not None:
                await memory_store.__aexit__(None, None, None)
        assert len(summary.completed) == n, (len(summary.completed), n)
        assert len(set(summary.completed)) == n
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--no-memory", action="store_true", help="Run without the memory store.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        bare_s = await bare(base / "bare", args.tasks, args.agents)
        orch_s = await orchestrated(base / "orch", args.tasks, args.agents, not args.no_memory)
    n = args.tasks
    bare_ms, orch_ms = 1000 * bare_s / n, 1000 * orch_s / n
    print(
        f"{n} tasks, {args.agents} agents, instant executor, local stores"
        f"{'' if not args.no_memory else ' (no memory store)'}"
    )
    print(
        f"bare store (claim_next + complete_task): {n / bare_s:8.1f} tasks/s {bare_ms:6.2f} ms/task"
    )
    print(
        f"orchestrator (full agent loop):          {n / orch_s:8.1f} tasks/s {orch_ms:6.2f} ms/task"
    )
    print(
        f"orchestration overhead:                  {orch_ms - bare_ms:6.2f} ms/task "
        f"({orch_s / bare_s:.2f}x the bare store)"
    )
    print(
        f"targets: >= 100 tasks/s ({'met' if n / orch_s >= 100 else 'MISSED'}), "
        f"<= 10 ms overhead ({'met' if orch_ms - bare_ms <= 10 else 'MISSED'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
