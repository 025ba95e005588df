"""Fencing tokens in a race of 4 processes on a real Worker: unique, and strictly increasing
along each chain of overlapping grants (a later holder always has the larger token)."""

from __future__ import annotations

import asyncio
import itertools

from jetpack.cf_mail import CloudflareMailBus
from jetpack.shared.rules import paths_overlap
from jetpack.shared.testing import StoreSpec, run_children
from jetpack.shared.testing._procs import lease_worker
from jetpack.shared.testing.edge import EdgeProject


async def test_fencing_tokens_strictly_increase_across_processes(
    edge_project: EdgeProject,
) -> None:
    spec = StoreSpec(
        "jetpack.cf_mail:CloudflareMailBus",
        {"worker_url": edge_project.url, "api_token": edge_project.token},
    )
    paths = ["src/a.py", "src/**", "src/b.py", "docs/*.md", "docs/x.md"]
    results = await asyncio.to_thread(
        run_children, lease_worker, [(spec, f"racer-{i}", paths, 100) for i in range(4)]
    )
    grants = [g for found in results for g in found]  # (path, token, held_from, held_until)
    assert len(grants) > 100
    tokens = [token for _, token, _, _ in grants]
    assert len(set(tokens)) == len(tokens), "a fencing token was granted twice"
    for x, y in itertools.combinations(grants, 2):
        if not paths_overlap(x[0], y[0]):
            continue
        first, second = (x, y) if x[3] < y[2] else (y, x)
        assert first[3] < second[2], f"overlapping grants held at once: {x} {y}"
        assert first[1] < second[1], f"a later holder got a smaller token: {first} {second}"
    async with CloudflareMailBus("after", edge_project.url, edge_project.token) as bus:
        later = await bus.grant_lease("src/a.py", 1000)
        assert later.fencing_token > max(tokens)
