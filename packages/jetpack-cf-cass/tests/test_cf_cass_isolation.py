"""Project isolation on every memory route: two projects store the same texts and vectors;
no search of any kind returns the other's memory, another project's ids answer 404, and
one project's BM25 scores do not move when another project writes the same words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared import MemoryType
from jetpack.shared.errors import NotFoundError
from jetpack.shared.testing import KitEmbedder
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker

TEXTS = [
    ("agent_learning", "lease renewal keeps files safe", 0.9),
    ("successful_fix", "bd-q3fy fixed by retrying the claim", 0.2),
    ("codebase_knowledge", "sessions live in src/auth/session.py", 0.5),
    ("test_failure_analysis", "test_claim_race fails under four processes", 0.1),
]


@dataclass
class Side:
    project: EdgeProject
    store: CloudflareMemoryStore
    ids: list[str]


@pytest_asyncio.fixture
async def sides(edge_worker: EdgeWorker) -> AsyncIterator[tuple[Side, Side]]:
    made = []
    for _ in range(2):
        project = edge_worker.new_project()
        store = CloudflareMemoryStore(project.url, project.token, embedder=KitEmbedder())
        await store.open()
        ids = await store.store_many(
            [{"type": t, "content": c, "importance": i} for t, c, i in TEXTS]
        )
        made.append(Side(project, store, ids))
    a, b = made
    try:
        yield a, b
    finally:
        for side in made:
            await side.store.aclose()


async def test_searches_of_every_kind_see_only_their_project(sides: tuple[Side, Side]) -> None:
    a, b = sides
    assert set(a.ids).isdisjoint(b.ids)
    for side, other in ((a, b), (b, a)):
        store, mine, theirs = side.store, set(side.ids), set(other.ids)
        vector = (await KitEmbedder().embed(["lease renewal keeps files safe"]))[0]
        found = [
            *await store.search("lease renewal bd-q3fy session.py test_claim_race", 50),
            *await store.semantic_search(vector, 50),
            *await store.semantic_search_by_query("claim race retry", 50),
            *await store.hybrid_search("claim race retry lease", 50),
            *await store.get_recent_memories(50),
            *await store.get_by_type(MemoryType.SUCCESSFUL_FIX, 50),
            *(await store.list_memories(limit=50)).items,
        ]
        assert {e.id for e in found} == mine, "a search returned another project's memory"
        assert not {e.id for e in found} & theirs
        stats = await store.get_stats()
        assert stats.total == len(TEXTS) and stats.with_embedding == len(TEXTS)


async def test_ids_of_another_project_answer_404(sides: tuple[Side, Side]) -> None:
    a, b = sides
    target = a.ids[0]
    before = await a.store.retrieve(target)
    assert before is not None
    assert await b.store.retrieve(target) is None
    assert await b.store.delete(target) is False
    with pytest.raises(NotFoundError):
        await b.store.update_importance(target, 0.0)
    headers = {"Authorization": f"Bearer {b.project.token}"}
    async with httpx.AsyncClient(base_url=b.project.url, headers=headers) as http:
        for method, body in (("GET", None), ("PATCH", {"importance": 0.3}), ("DELETE", None)):
            answer = await http.request(method, f"/api/memory/{target}", json=body)
            assert answer.status_code == 404, (method, answer.text)
            assert answer.json()["error"]["code"] == "not_found"
        filled = await http.post(
            "/api/memory/backfill",
            json={
                "vectors": [{"id": target, "embedding": [1.0] * 16}],
                "embedding_model": "caller",
            },
        )
        assert filled.json() == {"processed": 0}
    after = await a.store.retrieve(target)
    assert after is not None
    assert (after.importance, after.access_count) == (before.importance, before.access_count + 1)
    assert await b.store.compact(1.0) == 3  # B's own three unprotected memories
    assert (await a.store.get_stats()).total == len(TEXTS)
    assert await b.store.adaptive_compact() == 0
    assert (await a.store.get_stats()).total == len(TEXTS)


async def test_bm25_scores_are_the_projects_own(
    edge_worker: EdgeWorker, sides: tuple[Side, Side]
) -> None:
    """A shared FTS5 table would rank (and leak) by every project's words: here one
    project writing many memories with the query's words moves no score of another."""
    a, b = sides
    query = "lease renewal claim race"
    before = [(e.id, e.score) for e in await a.store.search(query, 10)]
    await b.store.store_many(
        [{"type": "agent_learning", "content": f"lease renewal claim {i}"} for i in range(200)]
    )
    after = [(e.id, e.score) for e in await a.store.search(query, 10)]
    assert after == before
    fresh = edge_worker.new_project()
    async with CloudflareMemoryStore(fresh.url, fresh.token, embedder=None) as c:
        await c.store_many([{"type": t, "content": x, "importance": i} for t, x, i in TEXTS])
        same = [e.score for e in await c.search(query, 10)]
    assert same == [score for _, score in before], "equal memories, equal scores, any project"
