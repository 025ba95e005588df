"""The Vectorize and Workers AI paths, on a Worker whose test build binds their stand-ins
(FAKE_VECTORIZE: Vectorize's API, eventually consistent, writes visible 1.5 s after they
are accepted; FAKE_AI: Workers AI's embedding API). The same persist folder first serves a
Worker without them, as a deployment that gains Vectorize and Workers AI later would."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import pytest
import pytest_asyncio

from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared.edge import BuildOptions
from jetpack.shared.errors import ValidationError
from jetpack.shared.testing import KitEmbedder
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker

AI_MODEL = "@cf/baai/bge-small-en-v1.5"
DELAY_MS = 1500
pytestmark = pytest.mark.asyncio(loop_scope="module")


class Hash384:
    """A deterministic 384-d bag-of-words embedder (the size of the Vectorize index)."""

    name = "test-hash-384"
    dimensions = 384

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * self.dimensions
            for word in text.lower().split():
                digest = hashlib.sha256(word.encode()).digest()
                vec[int.from_bytes(digest[:2], "big") % self.dimensions] += 1.0
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            out.append([v / norm for v in vec] if any(vec) else [1.0] + [0.0] * 383)
        return out

    async def aclose(self) -> None:
        """Nothing to release."""


class Edge:
    """The Worker with the stand-ins, and projects made before it had them."""

    def __init__(self, worker: EdgeWorker, plain: EdgeProject, built_in: EdgeProject) -> None:
        self.worker = worker
        self.plain = plain
        self.built_in = built_in


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root = tmp_path_factory.mktemp("vectorize")
    state = root / "state"
    before = EdgeWorker.start(root / "before", persist_to=state)
    try:
        plain = before.new_project()
        built_in = before.new_project()
        asyncio.run(_seed(plain, built_in))
    finally:
        before.stop()
    options = BuildOptions(features={"memory_fakes": {"delay_ms": DELAY_MS}})
    worker = EdgeWorker.start(root / "after", options, persist_to=state)
    try:  # the projects and their tokens live on, at the new Worker's address
        moved = [EdgeProject(worker.url, p.project, p.token, p.token_id) for p in (plain, built_in)]
        yield Edge(worker, *moved)
    finally:
        worker.stop()


async def _seed(plain: EdgeProject, built_in: EdgeProject) -> None:
    async with CloudflareMemoryStore(plain.url, plain.token, embedder=None) as store:
        await store.store_many(
            [{"type": "agent_learning", "content": f"alpha beta gamma note {i}"} for i in range(6)]
        )
        assert (await store.get_stats()).with_embedding == 0
    async with CloudflareMemoryStore(built_in.url, built_in.token, embedder=Hash384()) as store:
        await store.store_many(
            [{"type": "agent_learning", "content": f"built in vector {i}"} for i in range(5)]
        )
        assert (await store.index_state()).index == "built-in"


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(loop_scope="module")
async def fresh_project(edge: Edge) -> AsyncIterator[tuple[EdgeProject, CloudflareMemoryStore]]:
    project = edge.worker.new_project()
    async with CloudflareMemoryStore(project.url, project.token, embedder=Hash384()) as store:
        yield project, store


@pytest.fixture
def fresh(fresh_project: tuple[EdgeProject, CloudflareMemoryStore]) -> CloudflareMemoryStore:
    return fresh_project[1]


async def test_read_your_writes_while_vectorize_lags(fresh: CloudflareMemoryStore) -> None:
    ids = await fresh.store_many(
        [
            {"type": "agent_learning", "content": "lease renewal keeps files"},
            {"type": "successful_fix", "content": "retry the claim with backoff"},
            {"type": "test_failure_analysis", "content": "race between two workers"},
        ]
    )
    state = await fresh.index_state()
    assert state.index == "vectorize" and state.unconfirmed == 3  # Vectorize shows none yet
    for memory_id, query in zip(
        ids, ["lease renewal", "claim backoff", "two workers"], strict=True
    ):
        hits = await fresh.semantic_search_by_query(query, 1)
        assert [h.id for h in hits] == [memory_id], query
    started = time.monotonic()
    await until(lambda: _settled(fresh))
    assert time.monotonic() - started >= DELAY_MS / 1000 / 2, "confirmed before Vectorize showed it"
    for memory_id, query in zip(
        ids, ["lease renewal", "claim backoff", "two workers"], strict=True
    ):
        hits = await fresh.hybrid_search(query, 1)
        assert [h.id for h in hits] == [memory_id], query  # now answered by Vectorize
    assert await fresh.delete(ids[0])
    state = await fresh.index_state()
    assert state.deletes_unconfirmed == 1  # Vectorize still shows it...
    found = await fresh.semantic_search_by_query("lease renewal keeps files", 3)
    assert ids[0] not in {h.id for h in found}  # ...but it is filtered out
    await until(lambda: _settled(fresh))
    assert (await fresh.index_state()).vectors == 2


async def _settled(store: CloudflareMemoryStore) -> bool:
    state = await store.index_state()
    return state.unconfirmed == 0 and state.deletes_unconfirmed == 0


async def test_projects_are_namespaces_in_vectorize(edge: Edge) -> None:
    text = [{"type": "agent_learning", "content": "shared words in both projects"}]
    stores = []
    for _ in range(2):
        project = edge.worker.new_project()
        store = CloudflareMemoryStore(project.url, project.token, embedder=Hash384())
        await store.open()
        stores.append((store, set(await store.store_many(text * 3))))
    try:
        for store, _ in stores:
            await until(lambda s=store: _settled(s))  # type: ignore[misc]
        for store, mine in stores:
            for query in ("shared words", "both projects"):
                found = {h.id for h in await store.semantic_search_by_query(query, 50)}
                assert found == mine
    finally:
        for store, _ in stores:
            await store.aclose()


async def test_vectors_from_before_vectorize_was_bound_are_sent_to_it(edge: Edge) -> None:
    project = edge.built_in
    async with CloudflareMemoryStore(project.url, project.token, embedder=Hash384()) as store:
        assert (await store.index_state()).index == "vectorize"
        await until(lambda: _settled(store))
        assert (await store.index_state()).vectors == 5
        hits = await store.semantic_search_by_query("built in vector 3", 5)
        assert len(hits) == 5 and hits[0].content == "built in vector 3"


async def test_the_index_size_is_vectorizes(edge: Edge) -> None:
    project = edge.worker.new_project()
    async with CloudflareMemoryStore(project.url, project.token, embedder=KitEmbedder()) as store:
        with pytest.raises(ValidationError) as info:
            await store.store({"type": "agent_learning", "content": "sixteen dimensions"})
        assert info.value.field == "embedding" and "384" in info.value.reason
        assert (await store.get_stats()).total == 0


async def test_workers_ai_embeds_when_the_client_has_no_embedder(edge: Edge) -> None:
    project = edge.plain  # six memories stored before Workers AI was bound: no vectors
    async with CloudflareMemoryStore(project.url, project.token, embedder=None) as store:
        assert [await store.backfill_embeddings(4) for _ in range(3)] == [4, 2, 0]
        stats = await store.get_stats()
        assert (stats.with_embedding, stats.embedding_model) == (6, AI_MODEL)
        new = await store.store({"type": "successful_fix", "content": "delta epsilon zeta"})
        entry = await store.retrieve(new)
        assert entry is not None and entry.has_embedding and entry.embedding_model == AI_MODEL
        hits = await store.semantic_search_by_query("zeta epsilon delta", 1)
        assert [h.id for h in hits] == [new]
        assert hits[0].score is not None and hits[0].score > 0.99  # a cosine: by vector
        hybrid = await store.hybrid_search("delta epsilon", 3)
        assert hybrid[0].id == new


async def test_workers_ai_never_embeds_into_another_models_space(
    fresh_project: tuple[EdgeProject, CloudflareMemoryStore],
) -> None:
    project, fresh = fresh_project
    await fresh.store({"type": "agent_learning", "content": "made by the client's model"})
    assert (await fresh.index_state()).embedding_model == "test-hash-384"
    # The same project through a client without an embedder: Workers AI may not fill in.
    async with CloudflareMemoryStore(project.url, project.token, embedder=None) as plain:
        bare = await plain.store({"type": "agent_learning", "content": "no vector for me"})
        entry = await plain.retrieve(bare)
        assert entry is not None and not entry.has_embedding
        assert await plain.backfill_embeddings(10) == 0
        hits = await plain.semantic_search_by_query("no vector for me", 1)
        assert [h.id for h in hits] == [bare] and hits[0].score != pytest.approx(1.0)
    assert (await fresh.backfill_embeddings(10)) == 1  # the client's model fills it
    assert (await fresh.get_stats()).without_embedding == 0
