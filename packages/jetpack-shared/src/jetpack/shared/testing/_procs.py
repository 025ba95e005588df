"""The kit's own workers for its multi-process tests (run through :mod:`._children`).

Each rebuilds its store from a :class:`StoreSpec`, opens it, waits at the
start line (``link.ready()``) until every process is set up, and returns what
it observed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jetpack.shared.errors import LeaseHeldError
from jetpack.shared.testing._children import ChildLink, run_children
from jetpack.shared.testing._spec import StoreSpec

__all__ = ["claim_worker", "first_open_race", "lease_worker", "open_worker"]


async def claim_worker(link: ChildLink, spec: StoreSpec, agent_id: str) -> list[str]:
    """Claim with ``claim_next`` until nothing is left; return the ids claimed."""
    claimed: list[str] = []
    async with spec.build() as store:
        await link.ready()
        while True:
            task = await store.claim_next(agent_id)
            if task is None:
                return claimed
            claimed.append(task.id)


async def lease_worker(
    link: ChildLink, spec: StoreSpec, agent_id: str, paths: list[str], cycles: int
) -> list[tuple[str, int, int, int]]:
    """Acquire/hold/release exclusive leases in a loop.

    Returns ``(path, fencing_token, held_from_ns, held_until_ns)`` per grant, with
    times from ``time.monotonic_ns`` (one clock for every process on a machine).
    """
    grants: list[tuple[str, int, int, int]] = []
    async with spec.build(agent_id) as bus:
        await link.ready()
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


async def open_worker(
    link: ChildLink, specs: list[StoreSpec], args: tuple[Any, ...], probe: str
) -> list[str]:
    """Open each spec's store in turn, all processes together; the errors seen."""
    errors: list[str] = []
    for spec in specs:
        await link.ready()
        try:
            async with spec.build(*args) as store:
                await getattr(store, probe)()
        except Exception as exc:
            errors.append(f"{spec.kwargs}: {type(exc).__name__}: {exc}")
    return errors


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
    released together each time (a barrier), opens it and awaits
    ``store.<probe>()``. Returns the errors seen (empty when every open succeeded).
    """
    results = run_children(open_worker, [(specs, args, probe)] * processes, timeout=timeout)
    return [error for found in results for error in found]
