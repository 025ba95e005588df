"""The edge memory finds what the local memory finds: the memory-eval set in jetpack-cass
and in jetpack-cf-cass (on workerd), both with the local default embedder, give the same
recall@5 for every search and query style, and the same BM25 ranking query by query."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from jetpack.cass import CASSAdapter
from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared.registry import discover_backends
from jetpack.shared.testing import EvalQuery, memory_eval_set, recall_at
from jetpack.shared.testing.edge import EdgeWorker, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

EVAL = memory_eval_set()
MODES = ("search", "semantic_search_by_query", "hybrid_search")
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_cloudflare_memory_backend_is_registered() -> None:
    names = {b.name: b.distribution for b in discover_backends()}
    assert names["memory.cloudflare"] == "jetpack-cf-cass"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def both(
    edge_worker: EdgeWorker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[CASSAdapter, CloudflareMemoryStore]]:
    project = edge_worker.new_project()
    path: Path = tmp_path_factory.mktemp("eval") / "memories.db"
    async with (
        CASSAdapter(path, embedder="default") as local,
        CloudflareMemoryStore(project.url, project.token, embedder="default") as edge,
    ):
        assert local.embedder is not None and edge.embedder is not None
        assert local.embedder.name == edge.embedder.name
        await local.store_many(EVAL.memories)
        await edge.store_many(EVAL.memories)
        yield local, edge


@pytest.mark.parametrize("style", ["keyword", "paraphrase"])
@pytest.mark.parametrize("mode", MODES)
async def test_recall_at_5_equals_the_local_stores(
    both: tuple[CASSAdapter, CloudflareMemoryStore], mode: str, style: str
) -> None:
    local, edge = both
    queries: list[EvalQuery] = [q for q in EVAL.queries if q.style == style]
    expected = await recall_at(getattr(local, mode), queries)
    assert await recall_at(getattr(edge, mode), queries) == expected


async def test_bm25_ranks_the_same_memories_query_by_query(
    both: tuple[CASSAdapter, CloudflareMemoryStore],
) -> None:
    local, edge = both
    for query in EVAL.queries:
        here = [(e.id, round(e.score or 0, 9)) for e in await local.search(query.query, 5)]
        there = [(e.id, round(e.score or 0, 9)) for e in await edge.search(query.query, 5)]
        assert there == here, query.query
