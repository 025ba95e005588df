"""Retrieval quality on the public memory-eval set (../shared/data/memory-eval/public.jsonl).

recall@5 per query style: the share of relevant ids in the top 5, averaged.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from jetpack.cass import CASSAdapter

EVAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "memory-eval" / "public.jsonl"
if not EVAL.exists():  # the workspace layout: /work/main/packages/... and /work/shared/...
    EVAL = Path("/work/shared/data/memory-eval/public.jsonl")


def _load() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]
    memories = [{k: v for k, v in r.items() if k != "kind"} for r in rows if r["kind"] == "memory"]
    queries = [r for r in rows if r["kind"] == "query"]
    return memories, queries


MEMORIES, QUERIES = _load()


async def recall_at_5(store: CASSAdapter, mode: str, style: str) -> float:
    scores = []
    for query in (q for q in QUERIES if q["style"] == style):
        hits = await getattr(store, mode)(query["query"], 5)
        found = {h.id for h in hits} & set(query["relevant"])
        scores.append(len(found) / len(query["relevant"]))
    return statistics.mean(scores)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CASSAdapter]:
    """The eval set embedded once with the local default model (all-MiniLM-L6-v2)."""
    path = tmp_path_factory.mktemp("eval") / "memories.db"
    async with CASSAdapter(path, embedder="default") as store:
        await store.store_many(MEMORIES)
        yield store


def test_the_set_is_what_the_readme_says() -> None:
    assert len(MEMORIES) == 120 and len(QUERIES) == 40
    assert sum(q["style"] == "keyword" for q in QUERIES) == 12


async def test_keyword_queries_without_embedder(tmp_path: Path) -> None:
    async with CASSAdapter(tmp_path / "m.db", embedder=None) as store:
        await store.store_many(MEMORIES)
        assert await recall_at_5(store, "search", "keyword") >= 0.9
        assert await recall_at_5(store, "hybrid_search", "keyword") >= 0.9


@pytest.mark.asyncio(loop_scope="module")
async def test_keyword_queries_with_the_local_model(local_store: CASSAdapter) -> None:
    assert local_store.embedder is not None and local_store.embedder.dimensions == 384
    assert (await local_store.get_stats()).with_embedding == len(MEMORIES)
    assert await recall_at_5(local_store, "search", "keyword") >= 0.9
    assert await recall_at_5(local_store, "hybrid_search", "keyword") >= 0.9


@pytest.mark.asyncio(loop_scope="module")
async def test_paraphrases_need_the_model(local_store: CASSAdapter) -> None:
    """Paraphrases share at most one content word: BM25 is weak, MiniLM vectors are not."""
    bm25 = await recall_at_5(local_store, "search", "paraphrase")
    semantic = await recall_at_5(local_store, "semantic_search_by_query", "paraphrase")
    hybrid = await recall_at_5(local_store, "hybrid_search", "paraphrase")
    assert bm25 <= 0.3
    assert semantic >= 0.85
    assert semantic >= bm25 + 0.5
    assert hybrid > bm25 + 0.3
