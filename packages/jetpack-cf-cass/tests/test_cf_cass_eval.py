"""Retrieval quality on the memory-eval set (jetpack.shared.testing), on the edge, with the
local default model jetpack-cass uses: recall@5 keyword 1.00 with search and hybrid,
paraphrase >= 0.9 with semantic search (tests-integration checks that the figures equal
jetpack-cass's, query by query)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared.embedders import DEFAULT_LOCAL_MODEL
from jetpack.shared.testing import EvalQuery, memory_eval_set, recall_at
from jetpack.shared.testing.edge import EdgeWorker

EVAL = memory_eval_set()
pytestmark = pytest.mark.asyncio(loop_scope="module")


def part(style: str) -> list[EvalQuery]:
    return [q for q in EVAL.queries if q.style == style]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge_store(edge_worker: EdgeWorker) -> AsyncIterator[CloudflareMemoryStore]:
    """The eval set on a fresh project, embedded by the client with all-MiniLM-L6-v2."""
    project = edge_worker.new_project()
    async with CloudflareMemoryStore(project.url, project.token) as store:
        await store.store_many(EVAL.memories)
        yield store


async def test_the_edge_embeds_with_the_local_model(edge_store: CloudflareMemoryStore) -> None:
    stats = await edge_store.get_stats()
    assert stats.total == stats.with_embedding == len(EVAL.memories)
    state = await edge_store.index_state()
    assert (state.embedding_model, state.dimensions) == (DEFAULT_LOCAL_MODEL, 384)


async def test_keyword_queries_find_every_identifier(edge_store: CloudflareMemoryStore) -> None:
    keyword = part("keyword")
    assert await recall_at(edge_store.search, keyword) == 1.0
    assert await recall_at(edge_store.hybrid_search, keyword) == 1.0


async def test_paraphrases_are_found_by_vectors(edge_store: CloudflareMemoryStore) -> None:
    paraphrase = part("paraphrase")
    assert await recall_at(edge_store.semantic_search_by_query, paraphrase) >= 0.9
    assert await recall_at(edge_store.hybrid_search, paraphrase) >= 0.9
    assert await recall_at(edge_store.search, paraphrase) <= 0.3  # words alone do not
