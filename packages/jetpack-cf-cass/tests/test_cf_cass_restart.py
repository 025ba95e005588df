"""Restart workerd on the same persist folder: memories, vectors and their space are all still
there, and every search answers as before."""

from __future__ import annotations

from pathlib import Path

from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared.testing import KitEmbedder
from jetpack.shared.testing.edge import EdgeWorker


async def test_memories_and_vectors_survive_a_restart(tmp_path: Path) -> None:
    worker = EdgeWorker.start(tmp_path)
    try:
        project = worker.new_project()

        async def answers(store: CloudflareMemoryStore) -> list[list[tuple[str, float | None]]]:
            vector = (await KitEmbedder().embed(["lease renewal keeps files"]))[0]
            found = [
                await store.search("lease claim bd-q3fy", 5),
                await store.semantic_search(vector, 5),
                await store.semantic_search_by_query("claim race under load", 5),
                await store.hybrid_search("lease renewal", 5),
            ]
            return [[(e.id, e.score) for e in hits] for hits in found]

        async with CloudflareMemoryStore(
            project.url, project.token, embedder=KitEmbedder()
        ) as store:
            await store.store_many(
                [
                    {"type": "agent_learning", "content": "lease renewal keeps files"},
                    {"type": "successful_fix", "content": "bd-q3fy fixed by a claim retry"},
                    {"type": "test_failure_analysis", "content": "claim race under load"},
                    {"type": "codebase_knowledge", "content": "sessions in src/auth/session.py"},
                ]
            )
            before = await answers(store)
            stats = await store.get_stats()
        assert all(before), before
        worker.restart()
        async with CloudflareMemoryStore(
            project.url, project.token, embedder=KitEmbedder()
        ) as store:
            assert await answers(store) == before
            assert await store.get_stats() == stats
            state = await store.index_state()
            assert (state.vectors, state.embedding_model, state.dimensions) == (
                4,
                "kit-hash-16",
                16,
            )
            late = await store.store({"type": "agent_learning", "content": "written after restart"})
            hits = await store.semantic_search_by_query("written after restart", 1)
            assert [h.id for h in hits] == [late]
    finally:
        worker.stop()
