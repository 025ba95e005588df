"""Child process for the multi-process tests (run as a script, never imported by pytest).

Usage: python cass_worker.py DB_PATH NAME START_AT SHARED_ID
  stores 20 batches of 3 memories with 8-dim vectors, retrieves SHARED_ID after each,
  runs a search and a semantic search, then prints a JSON summary.
"""

import asyncio
import json
import sys
import time

from jetpack.cass import CASSAdapter


async def main(db_path: str, name: str, start_at: str, shared_id: str) -> None:
    async with CASSAdapter(db_path, embedder=None) as store:
        await asyncio.sleep(max(0.0, float(start_at) - time.time()))
        ids = []
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
        print(json.dumps({"ids": ids, "found": found, "near": near}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
