"""Vectors: float32 BLOBs with model and size, the cached matrix, switching embedders."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jetpack.cass import CALLER_MODEL, CASSAdapter
from jetpack.shared.errors import ValidationError


def vec(*head: float, dims: int = 8) -> list[float]:
    return [*head, *([0.0] * (dims - len(head)))]


async def test_vectors_are_float32_blobs_with_model_and_size(
    db_path: Path, make_embedder: Any
) -> None:
    async with CASSAdapter(db_path, embedder=make_embedder()) as store:
        made = await store.store({"type": "agent_learning", "content": "alpha beta"})
        given = await store.store(
            {"type": "agent_learning", "content": "gamma", "embedding": [0.5] * 32}
        )
        entry = await store.retrieve(made)
        assert entry is not None and entry.embedding_model == "test-hash-32"
        other = await store.retrieve(given)
        assert other is not None and other.embedding_model == CALLER_MODEL
    with sqlite3.connect(db_path) as conn:
        rows = dict(
            (
                (m, (d, len(b)))
                for m, d, b in conn.execute("SELECT model, dim, vector FROM memory_vectors")
            )
        )
        blob = conn.execute("SELECT vector FROM memory_vectors WHERE model = 'caller'").fetchone()[
            0
        ]
    assert rows == {"test-hash-32": (32, 128), "caller": (32, 128)}
    assert np.frombuffer(blob, dtype="<f4").tolist() == [0.5] * 32


async def test_repeated_searches_reuse_the_matrix(db_path: Path) -> None:
    """One full read of the vectors; later writes are picked up incrementally."""
    async with CASSAdapter(db_path, embedder=None) as store:
        await store.store_many(
            [
                {"type": "agent_learning", "content": f"v{i}", "embedding": vec(1, i / 100)}
                for i in range(200)
            ]
        )
        for _ in range(5):
            await store.semantic_search(vec(1), 3)
        assert store.matrix_loads == 1
        newest = await store.store(
            {"type": "agent_learning", "content": "y", "embedding": vec(0, 1)}
        )
        assert [h.id for h in await store.semantic_search(vec(0, 1), 1)] == [newest]
        assert await store.delete(newest)
        hits = await store.semantic_search(vec(0, 1), 1)
        assert hits and hits[0].id != newest
        assert store.matrix_loads == 1


async def test_another_process_writes_are_seen(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None) as first:
        await first.store({"type": "agent_learning", "content": "a", "embedding": vec(1)})
        assert len(await first.semantic_search(vec(1), 5)) == 1
        async with CASSAdapter(db_path, embedder=None) as second:
            b = await second.store(
                {"type": "agent_learning", "content": "b", "embedding": vec(0, 1)}
            )
            assert [h.id for h in await first.semantic_search(vec(0, 1), 1)] == [b]
            assert await second.delete(b)
        assert [h.content for h in await first.semantic_search(vec(0, 1), 5)] == ["a"]


async def test_cosine_is_exact_and_never_nan(store: CASSAdapter) -> None:
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((300, 8))
    ids = await store.store_many(
        [
            {"type": "agent_learning", "content": f"r{i}", "embedding": row.tolist()}
            for i, row in enumerate(matrix)
        ]
    )
    query = rng.standard_normal(8)
    expected = (matrix @ query) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    best = np.argsort(-expected)[:10]
    hits = await store.semantic_search(query.tolist(), 10)
    assert [h.id for h in hits] == [ids[i] for i in best]
    assert [h.score for h in hits] == pytest.approx(expected[best].tolist(), abs=1e-5)
    for bad in ([0.0] * 8, [float("nan")] * 8, [1.0] * 7, [], "abc"):
        with pytest.raises(ValidationError) as info:
            await store.semantic_search(bad, 5)  # type: ignore[arg-type]
        assert info.value.field == "embedding"


async def test_switching_embedder_drops_old_space_and_backfills(
    db_path: Path, make_embedder: Any
) -> None:
    async with CASSAdapter(db_path, embedder=make_embedder(32, "model-a")) as store:
        await store.store_many(
            [{"type": "agent_learning", "content": f"note {i}"} for i in range(3)]
        )
        assert (await store.get_stats()).with_embedding == 3
    async with CASSAdapter(db_path, embedder=make_embedder(16, "model-b")) as store:
        stats = await store.get_stats()
        assert (stats.with_embedding, stats.embedding_dimensions) == (0, 16)
        hits = await store.hybrid_search("note 1", 3)  # BM25 while vectors are missing
        assert hits and hits[0].content == "note 1"
        assert await store.backfill_embeddings(10) == 3
        assert await store.backfill_embeddings(10) == 0
        hits = await store.semantic_search_by_query("note 2", 1)
        assert hits[0].content == "note 2" and hits[0].embedding_model == "model-b"


async def test_embedder_failure_stores_text_and_backfill_catches_up(
    db_path: Path, make_embedder: Any
) -> None:
    embedder = make_embedder()
    async with CASSAdapter(db_path, embedder=embedder) as store:
        embedder.fail = True
        memory_id = await store.store({"type": "agent_learning", "content": "kept anyway"})
        assert (await store.get_stats()).without_embedding == 1
        assert [h.id for h in await store.hybrid_search("kept", 1)] == [memory_id]
        with pytest.raises(ConnectionError):
            await store.backfill_embeddings()
        embedder.fail = False
        assert await store.backfill_embeddings() == 1
        assert (await store.get_stats()).with_embedding == 1


async def test_hybrid_fuses_text_and_vectors(db_path: Path, make_embedder: Any) -> None:
    async with CASSAdapter(db_path, embedder=make_embedder()) as store:
        both = await store.store({"type": "agent_learning", "content": "lease renewal keeps files"})
        await store.store_many(
            [{"type": "agent_learning", "content": f"unrelated filler {i}"} for i in range(20)]
        )
        hits = await store.hybrid_search("lease renewal", 5)
        assert hits[0].id == both
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        # first in both lists (0.2 + 0.8), and the lone BM25 hit: decisive (+1)
        assert hits[0].score == pytest.approx(2.0)


async def test_hybrid_finds_an_identifier_whose_memory_has_no_vector(
    db_path: Path, make_embedder: Any
) -> None:
    """A memory stored while the embedder was down is still found by its identifier,
    above notes that share the query's other words and have vectors (RRF buried it)."""
    embedder = make_embedder()
    async with CASSAdapter(db_path, embedder=embedder) as store:
        await store.store_many(
            [
                {"type": "agent_learning", "content": f"websocket reconnect backoff note {i}"}
                for i in range(20)
            ]
        )
        embedder.fail = True
        lone = await store.store(
            {"type": "test_failure_analysis", "content": "ZQX-4471 nightly export times out"}
        )
        embedder.fail = False
        assert (await store.get_stats()).without_embedding == 1
        hits = await store.hybrid_search("ZQX-4471 websocket reconnect", 5)
        assert hits[0].id == lone
        assert all(h.content.startswith("websocket") for h in hits[1:])


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ([1e39, 1.0], "its length"),
        ([1e200, 1e200], "its length"),
        ([2e19, 2e19], "its length"),
        ([1e-50, 1e-50], "smallest step"),
        ([0.0, 0.0], "zero vector"),
    ],
)
async def test_vectors_float32_cannot_hold_are_refused_saying_why(
    store: CASSAdapter, values: list[float], why: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await store.store({"type": "agent_learning", "content": "x", "embedding": values})
    assert info.value.field == "embedding" and why in info.value.reason
    with pytest.raises(ValidationError) as info:
        await store.semantic_search(values)
    assert info.value.field == "embedding" and why in info.value.reason
    assert (await store.get_stats()).total == 0


async def test_ids_with_lone_surrogates_are_refused(store: CASSAdapter) -> None:
    for call in (store.retrieve, store.delete):
        with pytest.raises(ValidationError) as info:
            await call("mem-\ud800")
        assert info.value.field == "memory_id"
    with pytest.raises(ValidationError) as info:
        await store.update_importance("mem-\ud800", 0.5)
    assert info.value.field == "memory_id"
