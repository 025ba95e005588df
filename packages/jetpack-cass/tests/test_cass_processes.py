"""Several OS processes writing one memory file at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from jetpack.cass import CASSAdapter

WORKER = str(Path(__file__).with_name("cass_worker.py"))


async def test_processes_store_and_retrieve_concurrently(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None) as store:
        shared = await store.store(
            {"type": "agent_learning", "content": "shared", "embedding": [1.0] + [0.0] * 7}
        )
        await store.semantic_search([1.0] + [0.0] * 7, 1)  # warm the matrix before the others write
        start_at = time.time() + 1.0
        names = ["p1", "p2", "p3"]
        procs = [
            await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, WORKER, str(db_path), name, str(start_at), shared],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in names
        ]
        outputs = []
        for proc in procs:
            out, err = await asyncio.to_thread(proc.communicate, timeout=60)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out))
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
