"""Workers the kit runs in separate OS processes (spawned, so nothing is inherited).

Each worker rebuilds its store from a :class:`StoreSpec`, waits for a shared
start time so the processes really race, and returns what it observed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable
from typing import Any, TypeVar

from jetpack.shared.errors import LeaseHeldError
from jetpack.shared.testing._spec import StoreSpec

__all__ = ["claim_worker", "first_open_race", "lease_worker", "run_in_processes"]

R = TypeVar("R")


def run_in_processes(
    fn: Callable[..., R], arg_sets: list[tuple[Any, ...]], timeout: float = 120
) -> list[R]:
    """Run ``fn(*args)`` in one spawned process per argument tuple; return the results."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(len(arg_sets), mp_context=ctx) as pool:
        futures = [pool.submit(fn, *args) for args in arg_sets]
        return [f.result(timeout=timeout) for f in futures]


def _wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def claim_worker(spec: StoreSpec, agent_id: str, start_at: float) -> list[str]:
    """Claim with ``claim_next`` until nothing is left; return the ids claimed."""

    async def run() -> list[str]:
        claimed: list[str] = []
        async with spec.build() as store:
            await asyncio.sleep(max(start_at - time.time(), 0))
            while True:
                task = await store.claim_next(agent_id)
                if task is None:
                    return claimed
                claimed.append(task.id)

    return asyncio.run(run())


def lease_worker(
    spec: StoreSpec, agent_id: str, paths: list[str], cycles: int, start_at: float
) -> list[tuple[str, int, int, int]]:
    """Acquire/hold/release exclusive leases in a loop.

    Returns ``(path, fencing_token, held_from_ns, held_until_ns)`` per grant, with
    times from ``time.monotonic_ns`` (one clock for every process on a machine).
    """

    async def run() -> list[tuple[str, int, int, int]]:
        grants: list[tuple[str, int, int, int]] = []
        async with spec.build(agent_id) as bus:
            await asyncio.sleep(max(start_at - time.time(), 0))
            for i in range(cycles):
                path = paths[(i * 7 + len(agent_id)) % len(paths)]
                try:
                    lease = await bus.grant_lease(path, 10_000)
                except LeaseHeldError:
                    continue
                start = time.monotonic_ns()
                await asyncio.sleep(0.001)
                end = time.monotonic_ns()
                await bus.release_lease(path)
                grants.append((lease.path, lease.fencing_token, start, end))
        return grants

    return asyncio.run(run())


def _open_worker(
    specs: list[StoreSpec],
    args: tuple[Any, ...],
    probe: str,
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    async def open_once(spec: StoreSpec) -> None:
        async with spec.build(*args) as store:
            await getattr(store, probe)()

    errors: list[str] = []
    for spec in specs:
        try:
            barrier.wait(timeout=120)
            asyncio.run(open_once(spec))
        except Exception as exc:
            errors.append(f"{spec.kwargs}: {type(exc).__name__}: {exc}")
    results.put((index, errors))


def first_open_race(
    specs: list[StoreSpec],
    *,
    processes: int = 8,
    args: tuple[Any, ...] = (),
    probe: str = "get_stats",
    timeout: float = 600,
) -> list[str]:
    """Open each fresh store from ``processes`` processes at once, one store after another.

    Every process builds ``spec.build(*args)`` for each spec in turn, all of them
    released together by a barrier, opens it and awaits ``store.<probe>()``.
    Returns the errors seen (empty when every open succeeded).
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_open_worker, args=(specs, args, probe, barrier, results, i))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in procs:
            _, found = results.get(timeout=max(deadline - time.monotonic(), 1))
            errors.extend(found)
    finally:
        for proc in procs:
            proc.join(timeout=max(deadline - time.monotonic(), 1))
            if proc.is_alive():
                proc.kill()
                proc.join()
                errors.append(f"process {proc.pid} did not finish")
    return errors
