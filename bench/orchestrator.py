"""Orchestrator throughput: 1,000 tasks, 8 agents, an instant executor, real local stores.

Usage: hatch run python bench/orchestrator.py [--tasks 1000] [--agents 8] [--quick]

Prints, from one run:
- bare store: 8 workers doing only ``claim_next`` + ``complete_task`` on the same
  kind of store (a fresh database with the same tasks): tasks/s and ms per task;
- orchestrator: the full agent loop (claim, start, prompt with memory search and
  leases, execute, complete, memory record, events, heartbeats): tasks/s and ms per task,
  three times: without a memory store, with the memory store doing text search only
  (``[cass] embedder = "none"``), and with its default local embedder (MiniLM on the CPU:
  one query embedding per prompt and one per memory, which the CPU pays for);
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


def make_project(root: Path, embedder: str | None = None) -> Any:
    data: dict[str, Any] = {"mode": "local"}
    if embedder is not None:
        data["cass"] = {"embedder": embedder}
    (root / CONFIG_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(dump_toml(data), encoding="utf-8")
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


async def orchestrated(
    root: Path, n: int, agents: int, memory: bool, embedder: str | None = None
) -> float:
    config = make_project(root, embedder)
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
    parser.add_argument("--quick", action="store_true", help="Skip the embedding run.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n = args.tasks
    runs: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        bare_s = await bare(base / "bare", n, args.agents)
        runs.append(
            (
                "orchestrator, no memory store",
                await orchestrated(base / "a", n, args.agents, memory=False),
            )
        )
        runs.append(
            (
                "orchestrator + memory, text search",
                await orchestrated(base / "b", n, args.agents, memory=True, embedder="none"),
            )
        )
        if not args.quick:
            runs.append(
                (
                    "orchestrator + memory, local MiniLM",
                    await orchestrated(base / "c", n, args.agents, memory=True),
                )
            )
    bare_ms = 1000 * bare_s / n
    print(f"{n} tasks, {args.agents} agents, instant executor, local stores (beads, mail, cass)")
    print(
        f"{'bare store: claim_next + complete_task':<40} {n / bare_s:8.1f} tasks/s "
        f"{bare_ms:7.2f} ms/task"
    )
    for name, seconds in runs:
        ms = 1000 * seconds / n
        print(
            f"{name:<40} {n / seconds:8.1f} tasks/s {ms:7.2f} ms/task   "
            f"overhead {ms - bare_ms:6.2f} ms/task"
        )
    print("targets: >= 100 tasks/s, <= 10 ms overhead per task")


if __name__ == "__main__":
    asyncio.run(main())
