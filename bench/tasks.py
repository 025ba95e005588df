"""Benchmark of the local task store (jetpack-beads) against raw sqlite3.

Run:  hatch run python bench/tasks.py [--tasks 10000] [--claim-tasks 3000]

Both sides run the very same SQL strings (``jetpack.beads._sql``) on the same
schema, in the same run; the ratio column is store / raw (for times) or
store / raw (for rates). Targets of issue 3 (2-core machine):
get_ready_tasks p50 <= 15 ms at 10,000 tasks; claims/s >= 0.25 x raw sqlite3;
batched create >= 10,000 tasks/s; double claims = 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jetpack.beads import BeadsAdapter
from jetpack.beads import _sql as S
from jetpack.beads._schema import ensure_schema
from jetpack.shared import to_ms, utcnow
from jetpack.shared.rules import new_task_id

BATCH = 1000


# -- raw sqlite3 side ------------------------------------------------------------


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    ensure_schema(conn)
    return conn


def raw_params(task_id: str, title: str, deps: list[str], now: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(S.COLUMNS)
    row.update(
        id=task_id,
        title=title,
        status="pending",
        priority=random.choice(["low", "medium", "high", "critical"]),
        dependencies=json.dumps(deps),
        blockers="[]",
        required_skills="[]",
        tags="[]",
        target_branches="[]",
        retry_count=0,
        max_retries=2,
        created_at=now,
        updated_at=now,
        metadata="{}",
        version=1,
    )
    return row


def raw_create(conn: sqlite3.Connection, specs: list[tuple[str, list[str]]]) -> None:
    """One transaction: check ids and dependencies, insert rows and edges (as the store does)."""
    now = to_ms(utcnow())
    conn.execute("BEGIN IMMEDIATE")
    ids = [task_id for task_id, _ in specs]
    conn.execute(S.EXISTING_IDS, {"ids": json.dumps(ids)}).fetchall()
    deps = sorted({d for _, ds in specs for d in ds})
    conn.execute(S.EXISTING_IDS, {"ids": json.dumps(deps)}).fetchall()
    rows = [raw_params(task_id, task_id, ds, now) for task_id, ds in specs]
    conn.executemany(S.INSERT_TASK, rows)
    edges = [{"task_id": t, "depends_on": d} for t, ds in specs for d in ds]
    if edges:
        conn.executemany(S.INSERT_DEP, edges)
    conn.execute("COMMIT")


_next_sweep: dict[int, int] = {}


def raw_claim(conn: sqlite3.Connection, agent: str) -> str | None:
    """The store's claim_next: sweep lapsed claims once a second (or when nothing is found)."""
    now = to_ms(utcnow())
    params = {"agent": agent, "now": now, "expires": now + 900_000, "skills": None}
    conn.execute("BEGIN IMMEDIATE")
    swept = now >= _next_sweep.get(id(conn), 0)
    if swept:
        conn.execute(S.EXPIRED_CLAIMS, {"now": now}).fetchall()
        _next_sweep[id(conn)] = now + 1000
    row = conn.execute(S.CLAIM_NEXT, params).fetchone()
    if row is None and not swept:
        conn.execute(S.EXPIRED_CLAIMS, {"now": now}).fetchall()
        _next_sweep[id(conn)] = now + 1000
        row = conn.execute(S.CLAIM_NEXT, params).fetchone()
    conn.execute("COMMIT")
    return None if row is None else str(row[0])


def raw_claim_loop(path: str, agent: str, start_at: float) -> tuple[list[str], float]:
    conn = raw_connect(Path(path))
    time.sleep(max(0.0, start_at - time.time()))
    out = []
    while (task_id := raw_claim(conn, agent)) is not None:
        out.append(task_id)
    end = time.time()
    conn.close()
    return out, end


# -- store side ------------------------------------------------------------------


def store_claim_loop(path: str, agent: str, start_at: float) -> tuple[list[str], float]:
    async def run() -> tuple[list[str], float]:
        async with BeadsAdapter(path) as store:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            out = []
            while (task := await store.claim_next(agent)) is not None:
                out.append(task.id)
            return out, time.time()

    return asyncio.run(run())


def make_specs(n: int, dep_share: float = 0.2) -> list[tuple[str, list[str]]]:
    rng = random.Random(42)
    specs: list[tuple[str, list[str]]] = []
    for i in range(n):
        deps = [specs[rng.randrange(i)][0]] if i and rng.random() < dep_share else []
        specs.append((new_task_id(), deps))
    return specs


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def atimed(coro: Any) -> float:
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


Worker = Callable[[str, str, float], tuple[list[str], float]]


def in_processes(fn: Worker, path: Path, n: int) -> tuple[list[list[str]], float]:
    """Run ``fn`` in ``n`` processes that start claiming together; return ids and seconds."""
    ctx = mp.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(n) as pool:
        results = pool.starmap(fn, [(str(path), f"proc-{i}", start_at) for i in range(n)])
    return [ids for ids, _ in results], max(end for _, end in results) - start_at


def report(name: str, store: float, raw: float, unit: str, higher_is_better: bool) -> None:
    ratio = store / raw if raw else float("nan")
    better = "store/raw" if higher_is_better else "store/raw (time)"
    line = f"{name:<44} store {store:>10.1f} {unit:<8} raw {raw:>10.1f} {unit:<8}"
    print(f"{line} {better} {ratio:5.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--claim-tasks", type=int, default=3_000)
    args = parser.parse_args()
    n = args.tasks
    work = Path(tempfile.mkdtemp(prefix="jetpack-bench-"))
    specs = make_specs(n)
    print(f"jetpack-beads benchmark, {n} tasks (20% depend on an earlier task), in {work}")

    # create, single
    raw = raw_connect(work / "raw-single.db")
    t_raw = timed(lambda: [raw_create(raw, [s]) for s in specs])
    raw.close()
    async with BeadsAdapter(work / "store-single.db") as store:

        async def singles() -> None:
            for task_id, deps in specs:
                await store.create_task({"id": task_id, "title": task_id, "dependencies": deps})

        t_store = await atimed(singles())
    report("create, one task per transaction", n / t_store, n / t_raw, "tasks/s", True)

    # create, batched
    raw = raw_connect(work / "raw.db")
    t_raw = timed(lambda: [raw_create(raw, specs[i : i + BATCH]) for i in range(0, n, BATCH)])
    async with BeadsAdapter(work / "store.db") as store:

        async def batches() -> None:
            for i in range(0, n, BATCH):
                await store.create_tasks(
                    [{"id": t, "title": t, "dependencies": d} for t, d in specs[i : i + BATCH]]
                )

        t_store = await atimed(batches())
        report(f"create, batches of {BATCH}", n / t_store, n / t_raw, "tasks/s", True)

        # get_ready_tasks
        for limit in (100, None):
            store_s, raw_s = [], []
            for _ in range(20):
                store_s.append(await atimed(store.get_ready_tasks(limit)))
                params = {"now": to_ms(utcnow()), "limit": -1 if limit is None else limit}
                sql = S.READY_ALL if limit is None else S.READY_TASKS
                raw_s.append(timed(lambda p=params, q=sql: raw.execute(q, p).fetchall()))
            count = len(await store.get_ready_tasks(limit))
            label = f"get_ready_tasks(limit={limit}) p50, {count} rows"
            report(label, p50(store_s), p50(raw_s), "ms", False)
    raw.close()

    # claim races
    m = args.claim_tasks
    claim_specs = [(new_task_id(), []) for _ in range(m)]

    def fresh(name: str) -> Path:
        path = work / f"{name}.db"
        conn = raw_connect(path)
        for i in range(0, m, BATCH):
            raw_create(conn, claim_specs[i : i + BATCH])
        conn.close()
        return path

    path = fresh("claims-raw-1")
    conn = raw_connect(path)
    t_raw = timed(lambda: [None for _ in iter(lambda: raw_claim(conn, "raw"), None)])
    conn.close()
    path = fresh("claims-store-8")
    async with BeadsAdapter(path) as store:
        won: list[str] = []

        async def claimer(agent: str) -> None:
            while (task := await store.claim_next(agent)) is not None:
                won.append(task.id)

        t_store = await atimed(asyncio.gather(*(claimer(f"c{i}") for i in range(8))))
    doubles = len(won) - len(set(won))
    report(f"claim_next, 8 coroutines ({doubles} double)", m / t_store, m / t_raw, "claims/s", True)
    assert len(set(won)) == m and doubles == 0

    results = {}
    for side, fn in (("raw", raw_claim_loop), ("store", store_claim_loop)):
        path = fresh(f"claims-{side}-4p")
        lists, elapsed = in_processes(fn, path, 4)
        claimed = [t for ids in lists for t in ids]
        results[side] = (m / elapsed, len(claimed) - len(set(claimed)), len(set(claimed)))
    (s_rate, s_dup, s_n), (r_rate, r_dup, r_n) = results["store"], results["raw"]
    report(f"claim_next, 4 processes ({s_dup} double)", s_rate, r_rate, "claims/s", True)
    assert s_dup == 0 and r_dup == 0 and s_n == r_n == m


if __name__ == "__main__":
    asyncio.run(main())
