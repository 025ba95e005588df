"""Several OS processes writing one memory file at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jetpack.cass import CASSAdapter
from jetpack.shared.testing import ChildLink, run_children


async def write_and_read(
    link: ChildLink, db_path: str, name: str, shared_id: str
) -> dict[str, Any]:
    """Store 20 batches of 3 memories (8-dim vectors), retrieving ``shared_id`` after each."""
    async with CASSAdapter(db_path, embedder=None) as store:
        await link.ready()
        ids: list[str] = []
        for i in range(20):
            ids += await store.store_many(
                [
                    {
                        "type": "agent_learning",
                        "content": f"{name} note {i}-{j} marker_{name}",
                        "embedding": [1.0, float(i), float(j), 0, 0, 0, 0, 1.0],
                    }
                    for j in range(3)
                ]
            )
            await store.retrieve(shared_id)
        found = len(await store.search(f"marker_{name}", limit=100))
        near = len(await store.semantic_search([1.0, 0, 0, 0, 0, 0, 0, 1.0], limit=1000))
        return {"ids": ids, "found": found, "near": near}


async def test_processes_store_and_retrieve_concurrently(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None) as store:
        shared = await store.store(
            {"type": "agent_learning", "content": "shared", "embedding": [1.0] + [0.0] * 7}
        )
        await store.semantic_search([1.0] + [0.0] * 7, 1)  # warm the matrix before the others write
        names = ["p1", "p2", "p3"]
        outputs = await asyncio.to_thread(
            run_children, write_and_read, [(str(db_path), name, shared) for name in names]
        )
        ids = [i for o in outputs for i in o["ids"]]
        assert len(ids) == len(set(ids)) == 180
        assert all(o["found"] == 60 for o in outputs)
        assert all(o["near"] >= 60 for o in outputs)
        stats = await store.get_stats()
        assert stats.total == 181 and stats.with_embedding == 181
        entry = await store.retrieve(shared)
        assert entry is not None and entry.access_count == 61
        for name in names:
            assert len(await store.search(f"marker_{name}", limit=100)) == 60
        # this process's cached matrix caught up with the others' writes incrementally
        assert len(await store.semantic_search([1.0] + [0.0] * 7, 1000)) == 181
        assert store.matrix_loads == 1
