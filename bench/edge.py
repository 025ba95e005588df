"""Benchmark of the edge stores on local workerd against their local peers, in one run.

Run:  hatch run python bench/edge.py [--part all|tasks|memory|mail] [--tasks 10000]
          [--claim-tasks 3000] [--singles 300] [--memories 10000]
          [--messages 1000] [--cycles 300] [--requests 300] [--embed-texts 256]

Each edge store does the same work as its local peer in the same run: the
Worker runs on workerd (``wrangler dev``, local mode) on loopback, the local
stores on temporary SQLite files. The ratio column is edge / local.

Tasks (jetpack-cf-beads vs jetpack-beads). Targets of issue 13 (2-core
machine): claim_next >= 500 claims/s with 8 clients; batched create >= 5,000
tasks/s; request overhead p50 <= 3 ms; double claims = 0.

Mail (jetpack-cf-mail vs jetpack-mcp-mail; bench/edge_mail.py): publish ->
handler across two processes, a broadcast to 8 subscribers, lease cycles with 4
processes.

Memory (jetpack-cf-cass on the built-in index vs jetpack-cass), with the
synthetic corpus and queries of ``bench/memory.py`` and 384-d vectors supplied
by the caller: store_many/s in batches that fit one request (400) and in
batches uploaded in parts (2,000), then search / semantic / hybrid p50 at
``--memories`` (hybrid embeds its query with a fixed-vector embedder, so the
figure is the store's own cost). The local model's cost is measured apart
(texts/s). Targets of issue 14: search p50 <= 10 ms and semantic p50 <= 30 ms
at 10,000; batched store >= 2,000/s with vectors supplied.

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
from jetpack.cass import CASSAdapter
from jetpack.cf_beads import CloudflareTaskStore
from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared.rules import new_task_id
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker
from memory import FixedEmbedder, make_corpus, queries, unit_vectors  # bench/memory.py

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


def report(name: str, edge: float, local: float, unit: str, peer: str = "beads") -> None:
    ratio = edge / local if local else float("nan")
    print(f"{name:<58} edge {edge:9.1f} {unit:<6} {peer} {local:9.1f}   ratio {ratio:6.2f}")


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
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--part", choices=("all", "tasks", "memory", "mail"), default="all")
    parser.add_argument(
        "--requests", type=int, default=300, help="requests per route in the latency profile"
    )
    parser.add_argument(
        "--embed-texts", type=int, default=256, help="texts the local model embeds, timed apart"
    )
    args = parser.parse_args()
    n, m = args.tasks, args.claim_tasks
    work = Path(tempfile.mkdtemp(prefix="jetpack-bench-edge-"))
    print(f"edge stores on workerd vs their local peers, in {work}")
    started = time.perf_counter()
    worker = EdgeWorker.start(work / "worker")
    print(f"Worker built and started in {time.perf_counter() - started:.1f} s at {worker.url}")
    try:
        if args.part in ("tasks", "all"):
            print("-- tasks: jetpack-cf-beads vs jetpack-beads")
            await run_all(worker, work, n, m, args.singles, args.requests)
        if args.part in ("memory", "all"):
            print("-- memory: jetpack-cf-cass (built-in index) vs jetpack-cass")
            await run_memory(worker, work, args.memories, args.embed_texts)
        if args.part in ("mail", "all"):
            print("-- mail: jetpack-cf-mail vs jetpack-mcp-mail")
            pid = worker.server.pid or os.getpid()
            await run_mail(worker, work, args.messages, args.cycles, lambda: cpu_ticks(pid))
    finally:
        worker.stop()


async def run_all(
    worker: EdgeWorker, work: Path, n: int, m: int, singles: int, requests: int
) -> None:
    specs = make_specs(n)
    project = worker.new_project()
    root = worker.server.pid or 0
    await latency_profile(worker.url, project.token, root, requests)

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


MEMORY_BATCHES = (400, 2000)
"""store_many batch sizes: 400 memories with vectors fit one request; 2,000 go in parts."""


def memory_items(corpus: list[dict[str, Any]], vectors: Any) -> list[dict[str, Any]]:
    return [{**item, "embedding": vectors[i].tolist()} for i, item in enumerate(corpus)]


async def run_memory(worker: EdgeWorker, work: Path, count: int, embed_texts: int) -> None:
    root = worker.server.pid or 0
    corpus, vocab = make_corpus(count)
    items = memory_items(corpus, unit_vectors(count))
    asked = queries(corpus, vocab)
    probes = unit_vectors(200, seed=11).tolist()
    embedder = FixedEmbedder()
    try:
        from jetpack.shared.embedders import LocalEmbedder

        model = LocalEmbedder()
        texts = [item["content"] for item in corpus[:embed_texts]]
        await model.embed(texts[:8])  # load the weights first
        elapsed = await atimed(model.embed(texts))
        label = "local embedder (all-MiniLM-L6-v2), apart"
        print(f"{label:<52} {len(texts) / elapsed:10.1f} texts/s")
        await model.aclose()
    except Exception as error:  # the model is optional here
        print(f"local embedder not measured: {error}")

    stores: dict[int, tuple[EdgeProject, Path]] = {}
    for batch in MEMORY_BATCHES:
        project = worker.new_project()
        path = work / f"memory-{batch}.db"
        stores[batch] = (project, path)
        async with (
            CloudflareMemoryStore(
                project.url, project.token, embedder=None, max_entries=count * 2
            ) as edge,
            CASSAdapter(path, embedder=None, max_entries=count * 2) as cass,
        ):
            rates: dict[str, float] = {}
            for name, store in (("edge", edge), ("cass", cass)):

                async def fill(store: Any = store, batch: int = batch) -> None:
                    for i in range(0, count, batch):
                        await store.store_many(items[i : i + batch])

                rates[name] = count / await atimed(fill())
        label = f"store_many, batches of {batch} with vectors" + (
            " (one request each)" if batch <= 400 else " (uploaded in parts)"
        )
        report(label, rates["edge"], rates["cass"], "mem/s", "cass")

    project, path = stores[MEMORY_BATCHES[0]]
    async with (
        CloudflareMemoryStore(project.url, project.token, embedder=embedder) as edge,
        CASSAdapter(path, embedder=embedder) as cass,
    ):
        first = {
            "edge": await atimed(edge.semantic_search(probes[0], 10)),
            "cass": await atimed(cass.semantic_search(probes[0], 10)),
        }
        report(
            f"first semantic_search at {count} (loads the index)",
            first["edge"] * 1000,
            first["cass"] * 1000,
            "ms",
            "cass",
        )
        tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
        for label, call, args in (
            ("search", "search", asked),
            ("semantic_search", "semantic_search", probes),
            ("hybrid_search", "hybrid_search", asked),
        ):
            samples: dict[str, list[float]] = {"edge": [], "cass": []}
            cpu: dict[str, int] = {}
            for name, store in (("edge", edge), ("cass", cass)):
                before = cpu_ticks(root)
                for arg in args:
                    samples[name].append(await atimed(getattr(store, call)(arg, 10)))
                if name == "edge":
                    after = cpu_ticks(root)
                    cpu = {k: after[k] - before.get(k, 0) for k in after}
            report(
                f"{label} p50 at {count}, limit 10",
                p50(samples["edge"]),
                p50(samples["cass"]),
                "ms",
                "cass",
            )
            print(
                "    edge CPU per request: "
                + ", ".join(f"{k} {v * tick_ms / len(args):.2f} ms" for k, v in sorted(cpu.items()))
            )


if __name__ == "__main__":
    asyncio.run(main())
