"""Orchestrator throughput: 1,000 tasks, 8 agents, an instant executor, local and edge stores.

Usage: hatch run python bench/orchestrator.py [--tasks 1000] [--agents 8] [--quick]
           [--edge-tasks 1000] [--no-edge] [--idle 30]

Prints, from one run:

- in one process, on the local stores: the bare store (8 workers doing only
  ``claim_next`` + ``complete_task`` on the same kind of store) and the full
  agent loop (claim, prompt with memory search and leases, execute, complete,
  memory record, events, heartbeats) three times: without a memory store, with
  the memory store doing text search only, and with its default local embedder
  (MiniLM on the CPU; skipped with ``--quick``);
- across two processes, as two ``jetpack start`` runs on one project (8 agents
  split 4 + 4, the instant executor, memory off): the bare store and the
  agent loop on the local stores (one shared folder), then the same on the edge
  (tasks and mail on a local Worker on workerd, over loopback), side by side;
- with ``--idle S``: what idle agents cost on the edge, counted from the HTTP
  requests one run of 4 idle agents makes in S seconds (shortened periods),
  next to the formula (see the jetpack-cli README).

Overhead per task = agent loop ms per task - bare store ms per task (wall time,
8-way). Targets: issue 6, local in one process: >= 100 tasks/s and <= 10 ms
overhead per task; issue 16, edge across two processes: >= 100 tasks/s and
<= 20 ms overhead per task.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jetpack.cli import EventLog, InstantExecutor, Orchestrator, OrchestratorSettings
from jetpack.shared import TaskStatus
from jetpack.shared.config import CONFIG_FILE, dump_toml, load_config
from jetpack.shared.registry import create_store

SETTINGS: dict[str, Any] = {"poll_s": 30.0, "heartbeat_s": 5.0, "memory_context": 0}


def make_project(root: Path, data: dict[str, Any] | None = None) -> Any:
    data = {"mode": "local", **(data or {})}
    (root / CONFIG_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(dump_toml(data), encoding="utf-8")
    return load_config(root, env={})


def task_inputs(n: int) -> list[dict[str, Any]]:
    return [{"title": f"Bench task {i}", "description": f"Do thing number {i}"} for i in range(n)]


# ---------------------------------------------------------------- one process


async def bare(root: Path, n: int, workers: int) -> float:
    config = make_project(root)
    async with create_store(config, "tasks") as tasks:
        await tasks.create_tasks(task_inputs(n))
        started = time.perf_counter()
        await asyncio.gather(*(claim_loop(tasks, f"bare-{k}") for k in range(workers)))
        elapsed = time.perf_counter() - started
        stats = await tasks.get_stats()
        assert stats.by_status[TaskStatus.COMPLETED] == n, stats
    return elapsed


async def claim_loop(tasks: Any, agent: str) -> int:
    done = 0
    while True:
        task = await tasks.claim_next(agent)
        if task is None:
            return done
        await tasks.complete_task(task.id, agent)
        done += 1


async def orchestrated(
    root: Path, n: int, agents: int, memory: bool, embedder: str | None = None
) -> float:
    config = make_project(root, {"cass": {"embedder": embedder}} if embedder else None)
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
                settings=OrchestratorSettings(**{**SETTINGS, "memory_context": 5}),
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


# -------------------------------------------------------------- two processes


def cli_run(
    config: Any, tasks: Any, settings: dict[str, Any], agents: int, *, until_empty: bool
) -> Orchestrator:
    """A run as ``jetpack start`` builds it, with the instant executor and no memory store."""
    return Orchestrator(
        tasks=tasks,
        memory=None,
        mail_factory=lambda agent_id: create_store(config, "mail", agent_id=agent_id),
        executor=InstantExecutor(),
        settings=OrchestratorSettings(**settings),
        project_dir=config.project_dir,
        agent_count=agents,
        until_empty=until_empty,
        events=EventLog(None),
    )


def child(kind: str, folder: str, env: dict[str, str], agents: int, start_at: float) -> Any:
    """One process of a two-process run: ``run`` (an orchestrator) or ``bare`` (claim loops)."""
    logging.basicConfig(level=logging.WARNING)

    async def main() -> tuple[list[str], float]:
        config = load_config(folder, env=env)
        async with create_store(config, "tasks") as tasks:
            if kind == "bare":
                await asyncio.sleep(max(start_at - time.time(), 0))
                done = await asyncio.gather(
                    *(claim_loop(tasks, f"bare-{os.getpid()}-{k}") for k in range(agents))
                )
                return [str(sum(done))], time.time()
            orch = cli_run(config, tasks, SETTINGS, agents, until_empty=True)
            await asyncio.sleep(max(start_at - time.time(), 0))
            summary = await orch.run()
            return summary.completed, time.time()

    return asyncio.run(main())


def two_processes(kind: str, folders: list[Path], env: dict[str, str], agents: int) -> Any:
    """Run ``kind`` in one process per folder, started together; (per-process results, wall s)."""
    start_at = time.time() + 4  # imports and store opening happen before
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(folders)) as pool:
        results = pool.starmap(
            child, [(kind, str(f), env, agents // len(folders), start_at) for f in folders]
        )
    return [r[0] for r in results], max(r[1] for r in results) - start_at


def seed(folder: Path, env: dict[str, str], n: int) -> None:
    async def write() -> None:
        async with create_store(load_config(folder, env=env), "tasks") as tasks:
            for i in range(0, n, 500):
                await tasks.create_tasks(task_inputs(n)[i : i + 500])

    asyncio.run(write())


Ticks = Callable[[], dict[str, int]]


def swarm_pair(
    base: Path,
    data: dict[str, Any],
    env: dict[str, str],
    n: int,
    agents: int,
    cpu: Ticks | None = None,
) -> tuple[float, float]:
    """Bare store, then the agent loop, across two processes: (bare s, loop s).

    With ``cpu`` (CPU ticks by process role), print the server's CPU per task of each.
    """
    times = []
    for kind in ("bare", "run"):
        folders = [base / kind / name for name in ("laptop", "ci")]
        for folder in folders:
            make_project(folder, data)
        seed(folders[0], env, n)
        before = cpu() if cpu is not None else {}
        results, wall = two_processes(kind, folders, env, agents)
        if cpu is not None:
            after, hz = cpu(), os.sysconf("SC_CLK_TCK")
            spent = {
                role: 1000 * (after[role] - before.get(role, 0)) / hz / n
                for role in after
                if not role.startswith("client")
            }
            shown = ", ".join(f"{role} {ms:.1f}" for role, ms in sorted(spent.items()))
            print(f"  ({kind}: server CPU per task, ms: {shown})")
        if kind == "run":
            ids = [t for run in results for t in run]
            assert len(ids) == n and len(set(ids)) == n, (len(ids), len(set(ids)))
            assert all(run for run in results), "one process did all the work"
        else:
            assert sum(int(r[0]) for r in results) == n
        times.append(wall)
    return times[0], times[1]


# ------------------------------------------------------------------- idle cost


def idle_child(folder: str, env: dict[str, str], seconds: float, settings: dict[str, Any]) -> Any:
    """A run of 4 idle agents on the edge for ``seconds``: the HTTP requests it made, by route."""
    import httpx

    logging.basicConfig(level=logging.WARNING)
    counted: Counter[str] = Counter()
    send = httpx.AsyncClient.send

    async def counting(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        path = request.url.path
        if path.startswith("/api/tasks/") and path.count("/") > 3:
            path = "/api/tasks/{id}/" + path.rsplit("/", 1)[-1]
        counted[f"{request.method} {path}"] += 1
        return await send(self, request, **kw)

    httpx.AsyncClient.send = counting  # type: ignore[method-assign]

    async def main() -> None:
        config = load_config(folder, env=env)
        async with create_store(config, "tasks") as tasks:
            orch = cli_run(config, tasks, settings, 4, until_empty=False)
            run = asyncio.create_task(orch.run())
            await asyncio.sleep(3)  # start-up: version checks, first claims, first heartbeats
            counted.clear()
            await asyncio.sleep(seconds)
            snapshot = dict(counted)
            orch.request_stop()
            await run
            counted.clear()
            counted.update(snapshot)

    asyncio.run(main())
    return dict(counted)


def idle_cost(base: Path, data: dict[str, Any], env: dict[str, str], seconds: float) -> None:
    settings = {**SETTINGS, "heartbeat_s": 1.0, "idle_heartbeat_s": 2.0, "poll_s": 5.0}
    folder = base / "idle"
    make_project(folder, data)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        counted: dict[str, int] = pool.apply(idle_child, (str(folder), env, seconds, settings))
    total = sum(counted.values())
    agents = 4
    per_agent_hour = total / agents * 3600 / seconds
    formula = 3600 / settings["idle_heartbeat_s"] + 3600 / (settings["poll_s"] * agents)
    print(
        f"\nidle cost on the edge: 4 idle agents, {seconds:.0f} s, idle_heartbeat_s "
        f"{settings['idle_heartbeat_s']:g}, poll_s {settings['poll_s']:g}"
    )
    for route, count in sorted(counted.items()):
        print(f"  {route:<40} {count:6d}")
    print(
        f"  measured: {per_agent_hour:8.0f} requests per idle agent per hour   "
        f"formula 3600/idle_heartbeat_s + 3600/(poll_s x agents): {formula:8.0f}"
    )
    defaults = 3600 / 30.0 + 3600 / (60.0 * agents)
    print(
        f"  at the defaults (idle_heartbeat_s 30, poll_s 60, {agents} agents): "
        f"{defaults:.0f} requests per idle agent per hour"
    )


# ------------------------------------------------------------------------ main


def line(name: str, seconds: float, n: int, bare_s: float | None = None) -> str:
    ms = 1000 * seconds / n
    text = f"{name:<46} {n / seconds:8.1f} tasks/s {ms:7.2f} ms/task"
    if bare_s is not None:
        text += f"   overhead {ms - 1000 * bare_s / n:6.2f} ms/task"
    return text


async def in_process(base: Path, n: int, agents: int, quick: bool) -> None:
    bare_s = await bare(base / "bare", n, agents)
    runs = [
        ("agent loop, no memory store", await orchestrated(base / "a", n, agents, memory=False)),
        (
            "agent loop + memory, text search",
            await orchestrated(base / "b", n, agents, memory=True, embedder="none"),
        ),
    ]
    if not quick:
        runs.append(
            (
                "agent loop + memory, local MiniLM",
                await orchestrated(base / "c", n, agents, memory=True),
            )
        )
    print(f"{n} tasks, {agents} agents in one process, instant executor, local stores")
    print(line("bare store: claim_next + complete_task", bare_s, n))
    for name, seconds in runs:
        print(line(name, seconds, n, bare_s))
    print("targets (issue 6): >= 100 tasks/s, <= 10 ms overhead per task")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--edge-tasks", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="Skip the embedding run.")
    parser.add_argument("--no-edge", action="store_true", help="Skip the edge runs.")
    parser.add_argument("--idle", type=float, default=0.0, help="Measure idle cost for S s.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n, agents = args.tasks, args.agents
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        asyncio.run(in_process(base / "one", n, agents, args.quick))
        shared = base / "shared"
        local = {
            "local": {
                "tasks_db": str(shared / "beads.db"),
                "mail_dir": str(shared / "mail"),
                "memory_db": str(shared / "memories.db"),
            }
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
        local_bare, local_run = swarm_pair(base / "local", local, env, n, agents)
        print(f"\n{n} tasks, {agents} agents over 2 processes, instant executor, memory off")
        print(line("local: bare store", local_bare, n))
        print(line("local: agent loop", local_run, n, local_bare))
        if args.no_edge:
            return
        from jetpack.shared.testing.edge import EdgeWorker

        started = time.perf_counter()
        worker = EdgeWorker.start(base / "worker")
        print(f"(Worker built and started in {time.perf_counter() - started:.1f} s)")
        try:
            project = worker.new_project()
            edge_env = {
                **env,
                "JETPACK_MODE": "edge",
                "JETPACK_WORKER_URL": project.url,
                "JETPACK_API_TOKEN": project.token,
            }
            m = args.edge_tasks
            from edge import cpu_ticks  # bench/edge.py: CPU of the Worker's processes

            print(f"{m} tasks on the edge (tasks and mail on local workerd, loopback)")
            edge_bare, edge_run = swarm_pair(
                base / "edge", {}, edge_env, m, agents, lambda: cpu_ticks(worker.server.pid)
            )
            print(line("edge: bare store", edge_bare, m))
            print(line("edge: agent loop", edge_run, m, edge_bare))
            ratio = (m / edge_run) / (n / local_run)
            print(f"edge / local agent loop throughput: {ratio:.2f}")
            print("targets (issue 16, edge): >= 100 tasks/s, <= 20 ms overhead per task")
            if args.idle:
                idle_cost(base / "edge", {}, edge_env, args.idle)
        finally:
            worker.stop()


if __name__ == "__main__":
    main()
