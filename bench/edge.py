"""Benchmark of the edge stores on local workerd against their local peers, in one run.

Run:  hatch run python bench/edge.py [--part all|tasks|mail] [--tasks 10000]
          [--claim-tasks 3000] [--singles 300] [--messages 1000] [--cycles 300]

Tasks: jetpack-cf-beads against jetpack-beads (below). Mail: jetpack-cf-mail
against jetpack-mcp-mail (bench/edge_mail.py: publish → handler across two
processes, a broadcast to 8 subscribers, lease cycles with 4 processes).

Both stores do the same work in the same run: the Worker runs on workerd
(``wrangler dev``, local mode) on loopback, jetpack-beads on a temporary SQLite
file. The ratio column is edge / beads. Targets of issue 13 (2-core machine):
claim_next >= 500 claims/s with 8 clients; batched create >= 5,000 tasks/s;
request overhead p50 <= 3 ms; double claims = 0.

Where the time goes: every answer carries ``Server-Timing: worker;dur=…,
db;dur=…`` (time inside the Worker and waiting on D1; the Workers clock only
advances at I/O, so CPU work inside the Worker is not in it), and the profile
prints the CPU each process on the path spends per request: the Python client,
wrangler's local proxy (a workerd of its own), the workerd running the Worker
and D1 (miniflare's D1 is JavaScript inside that workerd), and wrangler's node.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from edge_mail import run_mail
from jetpack.beads import BeadsAdapter
from jetpack.cf_beads import CloudflareTaskStore
from jetpack.shared.rules import new_task_id
from jetpack.shared.testing.edge import EdgeWorker

BATCH = 1000
Spec = tuple[str, list[str]]


def make_specs(n: int, dep_share: float = 0.2) -> list[Spec]:
    """n tasks; a share of them depend on an earlier one (as bench/tasks.py)."""
    ids = [new_task_id() for _ in range(n)]
    step = max(1, int(1 / dep_share)) if dep_share else 0
    return [(t, [ids[i - 1]] if step and i and i % step == 0 else []) for i, t in enumerate(ids)]


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def atimed(coro: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


def report(name: str, edge: float, beads: float, unit: str) -> None:
    ratio = edge / beads if beads else float("nan")
    print(f"{name:<52} edge {edge:10.1f} {unit:<9} beads {beads:10.1f}   ratio {ratio:6.2f}")


def edge_claim_loop(url: str, token: str, agent: str, start_at: float) -> tuple[list[str], float]:
    async def run() -> tuple[list[str], float]:
        claimed: list[str] = []
        async with CloudflareTaskStore(url, token) as store:
            await asyncio.sleep(max(start_at - time.time(), 0))
            started = time.perf_counter()
            while (task := await store.claim_next(agent)) is not None:
                claimed.append(task.id)
            return claimed, time.perf_counter() - started

    return asyncio.run(run())


def beads_claim_loop(path: str, agent: str, start_at: float) -> tuple[list[str], float]:
    async def run() -> tuple[list[str], float]:
        claimed: list[str] = []
        async with BeadsAdapter(path) as store:
            await asyncio.sleep(max(start_at - time.time(), 0))
            started = time.perf_counter()
            while (task := await store.claim_next(agent)) is not None:
                claimed.append(task.id)
            return claimed, time.perf_counter() - started

    return asyncio.run(run())


def in_processes(
    fn: Callable[..., tuple[list[str], float]], args: list[tuple[Any, ...]]
) -> tuple[list[str], float]:
    start_at = time.time() + 3
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(args)) as pool:
        results = pool.starmap(fn, [(*a, start_at) for a in args])
    claimed = [t for ids, _ in results for t in ids]
    return claimed, max(elapsed for _, elapsed in results)


def cpu_ticks(root: int) -> dict[str, int]:
    """CPU time (clock ticks) so far of each process on the request path, by role (Linux).

    Only this benchmark's own processes count: the Worker's process tree below
    ``root`` (its supervisor) and this client; other Workers on the machine do not.
    """
    procs: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        procs[int(entry.name)] = (int(fields[1]), cmd, int(fields[11]) + int(fields[12]))
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (parent, _, _) in procs.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    totals: dict[str, int] = {"client (python)": procs.get(os.getpid(), (0, "", 0))[2]}
    for pid in tree & procs.keys():
        _, cmd, ticks = procs[pid]
        if "workerd" in cmd and " serve " in cmd:
            inner = "entry=127.0.0.1:0 " in cmd + " "
            role = "workerd (Worker + D1)" if inner else "wrangler's proxy"
        elif "wrangler" in cmd:
            role = "wrangler (node)"
        else:
            continue
        totals[role] = totals.get(role, 0) + ticks
    return totals


async def latency_profile(url: str, token: str, root: int, n: int = 300) -> None:
    """Request overhead: latency, time inside the Worker and D1, and CPU per request by process."""
    # As EdgeClient does on loopback: a local Worker would gzip every answer.
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
        async with CloudflareTaskStore(url, token) as store:
            await store.create_tasks([{"title": f"p{i}"} for i in range(n)])
        for label, method, path, body in (
            ("GET /api/health (no token, no D1)", "GET", "/api/health", None),
            ("GET /api/tasks/{id} (auth + 1 D1 read)", "GET", "/api/tasks/bd-missing", None),
            (
                "POST /api/tasks/claim-next (keyed)",
                "POST",
                "/api/tasks/claim-next",
                {"agent_id": "p"},
            ),
        ):
            total, inside, d1 = [], [], []
            before = cpu_ticks(root)
            for _ in range(n):
                extra = {"Idempotency-Key": os.urandom(8).hex()} if method == "POST" else {}
                started = time.perf_counter()
                answer = await http.request(method, path, json=body, headers=extra)
                total.append(time.perf_counter() - started)
                timing = answer.headers.get("Server-Timing", "")
                worker = re.search(r"worker;dur=([\d.]+)", timing)
                db = re.search(r"db;dur=([\d.]+)", timing)
                inside.append(float(worker.group(1)) / 1000 if worker else 0.0)
                d1.append(float(db.group(1)) / 1000 if db else 0.0)
            after = cpu_ticks(root)
            print(
                f"{label:<44} p50 {p50(total):6.2f} ms; inside the Worker {p50(inside):5.2f} ms "
                f"(D1 {p50(d1):5.2f} ms; the Workers clock stops during CPU work)"
            )
            cpu = {k: (after[k] - before.get(k, 0)) * tick_ms / n for k in after}
            print(
                "    CPU per request: "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(cpu.items()))
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--claim-tasks", type=int, default=3_000)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--part", choices=("all", "tasks", "mail"), default="all")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()
    n, m = args.tasks, args.claim_tasks
    work = Path(tempfile.mkdtemp(prefix="jetpack-bench-edge-"))
    print(f"edge stores on workerd vs their local peers, in {work}")
    started = time.perf_counter()
    worker = EdgeWorker.start(work / "worker")
    print(f"Worker built and started in {time.perf_counter() - started:.1f} s at {worker.url}")
    try:
        if args.part in ("all", "tasks"):
            await run_all(worker, work, n, m, args.singles)
        if args.part in ("all", "mail"):
            pid = worker.server.pid or os.getpid()
            await run_mail(worker, work, args.messages, args.cycles, lambda: cpu_ticks(pid))
    finally:
        worker.stop()


async def run_all(worker: EdgeWorker, work: Path, n: int, m: int, singles: int) -> None:
    specs = make_specs(n)
    project = worker.new_project()
    root = worker.server.pid or 0
    await latency_profile(worker.url, project.token, root)

    # create, single (a fresh project each, so both start empty)
    single_specs = specs[:singles]
    edge_project = worker.new_project()
    async with (
        CloudflareTaskStore(edge_project.url, edge_project.token) as edge,
        BeadsAdapter(work / "single.db") as beads,
    ):
        times: dict[str, float] = {}
        for name, store in (("edge", edge), ("beads", beads)):

            async def one_by_one(store: Any = store) -> None:
                for task_id, deps in single_specs:
                    await store.create_task({"id": task_id, "title": task_id, "dependencies": deps})

            times[name] = await atimed(one_by_one())
    report(
        "create, one task per request", singles / times["edge"], singles / times["beads"], "tasks/s"
    )

    # create, batched; then the ready listing at n tasks
    big = worker.new_project()
    async with (
        CloudflareTaskStore(big.url, big.token) as edge,
        BeadsAdapter(work / "big.db") as beads,
    ):
        for name, store in (("edge", edge), ("beads", beads)):

            async def batches(store: Any = store) -> None:
                for i in range(0, n, BATCH):
                    chunk = specs[i : i + BATCH]
                    await store.create_tasks(
                        [{"id": t, "title": t, "dependencies": d} for t, d in chunk]
                    )

            times[name] = await atimed(batches())
        report(f"create, batches of {BATCH}", n / times["edge"], n / times["beads"], "tasks/s")
        for limit in (100, None):
            samples: dict[str, list[float]] = {"edge": [], "beads": []}
            for _ in range(15):
                for name, store in (("edge", edge), ("beads", beads)):
                    samples[name].append(await atimed(store.get_ready_tasks(limit)))
            rows = len(await edge.get_ready_tasks(limit))
            label = f"get_ready_tasks(limit={limit}) p50, {rows} rows"
            report(label, p50(samples["edge"]), p50(samples["beads"]), "ms")

    # claims: 8 coroutines on one store
    claim_specs = [{"title": f"c{i}"} for i in range(m)]
    rates: dict[str, float] = {}
    doubles: dict[str, int] = {}
    claims = worker.new_project()
    async with (
        CloudflareTaskStore(claims.url, claims.token) as edge,
        BeadsAdapter(work / "claims.db") as beads,
    ):
        for name, store in (("edge", edge), ("beads", beads)):
            for i in range(0, m, BATCH):
                await store.create_tasks(claim_specs[i : i + BATCH])
            won: list[str] = []

            async def claimer(agent: str, store: Any = store, won: list[str] = won) -> None:
                while (task := await store.claim_next(agent)) is not None:
                    won.append(task.id)

            before = cpu_ticks(root)
            elapsed = await atimed(asyncio.gather(*(claimer(f"a{i}") for i in range(8))))
            after = cpu_ticks(root)
            rates[name] = m / elapsed
            if name == "edge":
                tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
                per = {k: (after[k] - before.get(k, 0)) * tick_ms / m for k in after}
                profile = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(per.items()))
                total = sum(per.values())
                print(f"    CPU per claim (8 coroutines): {profile}; total {total:.2f} ms")
            doubles[name] = len(won) - len(set(won))
            assert len(set(won)) == m, f"{name}: {len(set(won))} of {m} claimed"
    report(
        f"claim_next, 8 coroutines ({doubles['edge']} double)",
        rates["edge"],
        rates["beads"],
        "claims/s",
    )

    # claims: 4 processes
    racers = worker.new_project()
    async with CloudflareTaskStore(racers.url, racers.token) as edge:
        for i in range(0, m, BATCH):
            await edge.create_tasks(claim_specs[i : i + BATCH])
    async with BeadsAdapter(work / "claims-4p.db") as beads:
        for i in range(0, m, BATCH):
            await beads.create_tasks(claim_specs[i : i + BATCH])
    edge_claimed, edge_time = in_processes(
        edge_claim_loop, [(racers.url, racers.token, f"p{i}") for i in range(4)]
    )
    beads_claimed, beads_time = in_processes(
        beads_claim_loop, [(str(work / "claims-4p.db"), f"p{i}") for i in range(4)]
    )
    edge_doubles = len(edge_claimed) - len(set(edge_claimed))
    report(
        f"claim_next, 4 processes ({edge_doubles} double)",
        m / edge_time,
        m / beads_time,
        "claims/s",
    )
    assert edge_doubles == 0 and len(set(edge_claimed)) == m
    assert len(set(beads_claimed)) == len(beads_claimed) == m


if __name__ == "__main__":
    asyncio.run(main())
