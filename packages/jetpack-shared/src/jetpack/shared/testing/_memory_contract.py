"""MemoryStoreContract: the behaviour every MemoryStore keeps.

Subclass it and supply ``store_spec``. The kit builds stores with
``store_spec.build(embedder=None or KitEmbedder(), max_entries=...)`` and uses
8-dimensional vectors::

    class TestCassContract(MemoryStoreContract):
        @pytest.fixture
        def store_spec(self, tmp_path):
            return StoreSpec("jetpack.cass:CASSAdapter", {"db_path": str(tmp_path / "m.db")})

Two builds of one spec must see the same data (as two opens of one file).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from jetpack.shared import MAX_JSON_DEPTH, MemoryStore, MemoryType
from jetpack.shared.errors import NotFoundError, ValidationError
from jetpack.shared.testing._guard import KitContract
from jetpack.shared.testing._spec import StoreSpec
from jetpack.shared.testing._task_contract import nested

__all__ = ["KitEmbedder", "MemoryStoreContract"]

DIMS = 8


def unit(*weights: float) -> list[float]:
    """An 8-d vector from the first weights, zero-padded."""
    values = [*weights, *([0.0] * (DIMS - len(weights)))]
    return values[:DIMS]


class KitEmbedder:
    """A deterministic 16-d bag-of-words embedder for kit tests (not a real model)."""

    name = "kit-hash-16"
    dimensions = 16

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Hash each lower-cased word into one of 16 buckets, then L2-normalise."""
        self.calls += 1
        out = []
        for text in texts:
            vec = [0.0] * self.dimensions
            for word in text.lower().split():
                bucket = hashlib.sha256(word.encode()).digest()[0] % self.dimensions
                vec[bucket] += 1.0
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            out.append([v / norm if norm else 0.0 for v in vec] if any(vec) else [1.0] + [0.0] * 15)
        return out

    async def aclose(self) -> None:
        """Nothing to release."""


class MemoryStoreContract(KitContract, kit=True):
    """Conformance tests for :class:`jetpack.shared.MemoryStore` backends.

    What a failure usually means: "Troubleshooting" in jetpack-shared's README.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest.fixture
    def store_spec(self, tmp_path: Any) -> StoreSpec:
        """Abstract: a StoreSpec for an empty store; two builds share its data."""
        raise NotImplementedError(
            "subclass MemoryStoreContract and override the store_spec fixture"
        )

    @pytest_asyncio.fixture
    async def store(self, store_spec: StoreSpec) -> AsyncIterator[MemoryStore]:
        """An open, empty store without an embedder."""
        async with store_spec.build(embedder=None) as store:
            yield store

    async def test_unknown_option_is_refused_by_name(self, store_spec: StoreSpec) -> None:
        """An option the store does not take is a ValidationError naming it (never ignored)."""
        with pytest.raises(ValidationError) as info:
            store_spec.build(no_such_option=1)
        assert info.value.field == "no_such_option"

    # -- store / retrieve --------------------------------------------------

    async def test_store_then_retrieve_round_trips(self, store: MemoryStore) -> None:
        """Store returns an id; retrieve returns the content, type, importance and metadata."""
        memory_id = await store.store(
            {
                "type": "agent_learning",
                "content": "Use WAL for SQLite",
                "importance": 0.8,
                "metadata": {"k": 1},
            }
        )
        entry = await store.retrieve(memory_id)
        assert entry is not None and entry.id == memory_id
        assert entry.type is MemoryType.AGENT_LEARNING and entry.content == "Use WAL for SQLite"
        assert entry.importance == 0.8 and entry.metadata == {"k": 1}
        assert entry.created_at.tzinfo is not None

    async def test_retrieve_counts_accesses(self, store: MemoryStore) -> None:
        """Each retrieve bumps access_count by one and moves last_accessed forward."""
        memory_id = await store.store({"type": "agent_learning", "content": "x"})
        counts = []
        last = None
        for _ in range(3):
            await asyncio.sleep(0.002)
            entry = await store.retrieve(memory_id)
            assert entry is not None
            counts.append(entry.access_count)
            if last is not None:
                assert entry.last_accessed > last
            last = entry.last_accessed
        assert counts == [1, 2, 3]

    async def test_retrieve_and_delete_unknown(self, store: MemoryStore) -> None:
        """Retrieve of an unknown id is None; delete is True once then False."""
        assert await store.retrieve("mem-missing") is None
        memory_id = await store.store({"type": "agent_learning", "content": "x"})
        assert await store.delete(memory_id) is True
        assert await store.delete(memory_id) is False
        assert await store.retrieve(memory_id) is None

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("type", "task_context"),
            ("importance", 1.5),
            ("importance", -0.1),
            ("content", ""),
            ("embedding", [0.0] * DIMS),
            ("embedding", [float("nan")] * DIMS),
            ("metadata", {"x": float("inf")}),
            ("extra_field", 1),
        ],
    )
    async def test_bad_input_names_the_field_and_writes_nothing(
        self, store: MemoryStore, field: str, value: object
    ) -> None:
        """Each invalid field raises ValidationError naming it; nothing is stored."""
        data: dict[str, object] = {"type": "agent_learning", "content": "valid"}
        data[field] = value
        with pytest.raises(ValidationError) as info:
            await store.store(data)
        assert info.value.field.split(".")[0] == field
        assert (await store.get_stats()).total == 0

    async def test_hostile_input_is_refused_by_field(self, store: MemoryStore) -> None:
        """Deep or surrogate-laden metadata, surrogate text, vectors float32 cannot hold.

        Each is a ValidationError naming its field (saying why), and nothing is stored.
        """
        cases: list[tuple[str, dict[str, Any]]] = [
            ("metadata", {"metadata": nested(MAX_JSON_DEPTH + 1)}),
            ("metadata", {"metadata": nested(5_000)}),
            ("metadata", {"metadata": {"\ud800": 1}}),
            ("metadata", {"metadata": {"k": {"j": "\udbff"}}}),
            ("content", {"content": "lone \ud800 surrogate"}),
            ("embedding", {"embedding": unit(1e39, 1.0)}),
            ("embedding", {"embedding": unit(3e38, 3e38)}),
            ("embedding", {"embedding": unit(1e-50, 1e-50)}),
        ]
        for field, extra in cases:
            data: dict[str, Any] = {"type": "agent_learning", "content": "valid", **extra}
            with pytest.raises(ValidationError) as info:
                await store.store(data)
            assert info.value.field.split(".")[0] == field, extra
            if field == "embedding":
                assert "float32" in info.value.reason, info.value.reason
        with pytest.raises(ValidationError) as info:
            await store.store_many(
                [{"type": "agent_learning", "content": "ok"}, {**cases[1][1], **cases[4][1]}]
            )
        assert (await store.get_stats()).total == 0
        stored = await store.store(
            {"type": "agent_learning", "content": "deep enough", "metadata": nested(MAX_JSON_DEPTH)}
        )
        for call in (store.search, store.semantic_search_by_query, store.hybrid_search):
            with pytest.raises(ValidationError) as info:
                await call("find \ud800")
            assert info.value.field == "query"
        with pytest.raises(ValidationError) as info:
            await store.semantic_search(unit(1e39, 1.0))
        assert info.value.field == "embedding"
        assert [e.id for e in await store.get_recent_memories()] == [stored]

    async def test_wrong_vector_size_is_refused(self, store: MemoryStore) -> None:
        """After the first vector fixes the size, other sizes are refused for store and search."""
        await store.store({"type": "agent_learning", "content": "a", "embedding": unit(1)})
        with pytest.raises(ValidationError) as info:
            await store.store({"type": "agent_learning", "content": "b", "embedding": [1.0, 0.0]})
        assert info.value.field == "embedding"
        with pytest.raises(ValidationError):
            await store.semantic_search([1.0, 0.0, 0.0])
        with pytest.raises(ValidationError):
            await store.semantic_search([0.0] * DIMS)
        assert (await store.get_stats()).total == 1

    async def test_store_many_is_all_or_nothing(self, store: MemoryStore) -> None:
        """A batch with one bad entry stores nothing."""
        with pytest.raises(ValidationError):
            await store.store_many(
                [{"type": "agent_learning", "content": "ok"}, {"type": "nope", "content": "bad"}]
            )
        assert (await store.get_stats()).total == 0
        ids = await store.store_many(
            [{"type": "agent_learning", "content": f"m{i}"} for i in range(5)]
        )
        assert len(set(ids)) == 5

    # -- text search -------------------------------------------------------

    async def test_search_finds_words_and_identifiers(self, store: MemoryStore) -> None:
        """Search finds plain words and exact identifiers (ids, snake_case, paths)."""
        await store.store_many(
            [
                {
                    "type": "agent_learning",
                    "content": "Task bd-q3fy failed on a flaky network call",
                },
                {
                    "type": "test_failure_analysis",
                    "content": "test_claim_race fails under 4 processes",
                },
                {"type": "codebase_knowledge", "content": "Sessions live in src/auth/session.py"},
                {"type": "agent_learning", "content": "Unrelated note about the weather"},
            ]
        )
        for query, expected in [
            ("bd-q3fy", "bd-q3fy"),
            ("test_claim_race", "test_claim_race"),
            ("src/auth/session.py", "session.py"),
            ("flaky network", "flaky"),
        ]:
            hits = await store.search(query, limit=5)
            assert hits, f"no hit for {query!r}"
            assert expected in hits[0].content, f"{query!r} ranked {hits[0].content!r} first"

    @pytest.mark.parametrize(
        "query",
        [
            '"',
            "-",
            "a:b",
            "AND",
            "fix AND",
            "(",
            "*",
            "NEAR(",
            "'; DROP TABLE memories; --",
            "日本語",
            "  ",
        ],
    )
    async def test_search_is_safe_for_any_text(self, store: MemoryStore, query: str) -> None:
        """Operators, quotes and unicode never raise; they are searched as text."""
        await store.store({"type": "agent_learning", "content": "fix AND retry: a-b (done)"})
        hits = await store.search(query)
        assert isinstance(hits, list)
        assert (await store.get_stats()).total == 1

    async def test_search_limit_and_no_match(self, store: MemoryStore) -> None:
        """Search honours limit and returns [] when nothing matches."""
        await store.store_many(
            [{"type": "agent_learning", "content": f"cache note {i}"} for i in range(8)]
        )
        assert len(await store.search("cache", limit=3)) == 3
        assert await store.search("zebra") == []

    # -- vector search -----------------------------------------------------

    async def test_semantic_search_orders_by_cosine(self, store: MemoryStore) -> None:
        """semantic_search returns nearest first by cosine, with scores, honouring limit."""
        ids = {}
        for name, vec in {
            "x": unit(1),
            "xy": unit(1, 1),
            "y": unit(0, 1),
            "z": unit(0, 0, 1),
        }.items():
            ids[name] = await store.store(
                {"type": "agent_learning", "content": name, "embedding": vec}
            )
        hits = await store.semantic_search(unit(1, 0.1), limit=3)
        assert [h.id for h in hits] == [ids["x"], ids["xy"], ids["y"]]
        assert hits[0].score is not None and hits[0].score == pytest.approx(
            1 / math.sqrt(1.01), abs=1e-4
        )
        assert hits[0].score >= hits[1].score >= hits[2].score  # type: ignore[operator]

    async def test_semantic_search_without_vectors_is_empty(self, store: MemoryStore) -> None:
        """semantic_search over entries without vectors returns []."""
        await store.store({"type": "agent_learning", "content": "no vector"})
        assert await store.semantic_search(unit(1)) == []

    async def test_query_search_without_embedder_falls_back_to_text(
        self, store: MemoryStore
    ) -> None:
        """Without an embedder, semantic_search_by_query and hybrid_search use text search."""
        target = await store.store(
            {"type": "agent_learning", "content": "retry with jittered back-off"}
        )
        await store.store({"type": "agent_learning", "content": "something else entirely"})
        assert [h.id for h in await store.semantic_search_by_query("jittered", 5)] == [target]
        assert [h.id for h in await store.hybrid_search("jittered", 5)] == [target]

    async def test_embedder_fills_vectors_and_hybrid_fuses(self, store_spec: StoreSpec) -> None:
        """With an embedder, texts get vectors; hybrid search returns text and vector hits."""
        embedder = KitEmbedder()
        async with store_spec.build(embedder=embedder) as store:
            a = await store.store(
                {"type": "agent_learning", "content": "lease renewal keeps files"}
            )
            b = await store.store({"type": "agent_learning", "content": "alpha beta gamma"})
            stats = await store.get_stats()
            assert stats.with_embedding == 2
            by_query = await store.semantic_search_by_query("alpha beta gamma", 1)
            assert [h.id for h in by_query] == [b]
            hybrid = await store.hybrid_search("lease renewal", 2)
            assert hybrid[0].id == a

    async def test_backfill_embeddings_is_resumable(self, store_spec: StoreSpec) -> None:
        """Entries stored without an embedder are embedded later, batch by batch."""
        async with store_spec.build(embedder=None) as plain:
            await plain.store_many(
                [{"type": "agent_learning", "content": f"note {i}"} for i in range(5)]
            )
        async with store_spec.build(embedder=KitEmbedder()) as store:
            assert [await store.backfill_embeddings(2) for _ in range(4)] == [2, 2, 1, 0]
            stats = await store.get_stats()
            assert stats.with_embedding == 5 and stats.without_embedding == 0

    # -- maintenance -------------------------------------------------------

    async def test_compact_spares_protected_types(self, store: MemoryStore) -> None:
        """compact(t) deletes entries below t except codebase_knowledge; returns the count."""
        await store.store({"type": "agent_learning", "content": "low", "importance": 0.1})
        await store.store({"type": "agent_learning", "content": "high", "importance": 0.9})
        kept = await store.store(
            {"type": "codebase_knowledge", "content": "low but kept", "importance": 0.1}
        )
        assert await store.compact(0.3) == 1
        stats = await store.get_stats()
        assert stats.total == 2
        assert await store.retrieve(kept) is not None

    async def test_adaptive_compact_keeps_newest_and_important(self, store_spec: StoreSpec) -> None:
        """Past max_entries the lowest-retention entries go; the entry just stored never does."""
        async with store_spec.build(embedder=None, max_entries=5) as store:
            important = await store.store(
                {"type": "agent_learning", "content": "keep me", "importance": 1.0}
            )
            for i in range(6):
                await store.store(
                    {"type": "agent_learning", "content": f"filler {i}", "importance": 0.1}
                )
            newest = await store.store(
                {"type": "agent_learning", "content": "newest", "importance": 0.0}
            )
            await store.adaptive_compact()
            stats = await store.get_stats()
            assert stats.total <= 5
            assert await store.retrieve(newest) is not None
            assert await store.retrieve(important) is not None

    async def test_update_importance(self, store: MemoryStore) -> None:
        """update_importance sets 0..1, refuses other values by field, raises for unknown ids."""
        memory_id = await store.store({"type": "agent_learning", "content": "x"})
        await store.update_importance(memory_id, 0.9)
        entry = await store.retrieve(memory_id)
        assert entry is not None and entry.importance == 0.9
        with pytest.raises(ValidationError) as info:
            await store.update_importance(memory_id, 1.2)
        assert info.value.field == "importance"
        with pytest.raises(NotFoundError):
            await store.update_importance("mem-missing", 0.5)

    async def test_get_by_type_and_recent(self, store: MemoryStore) -> None:
        """get_by_type sorts by importance; get_recent_memories newest first."""
        low = await store.store({"type": "successful_fix", "content": "a", "importance": 0.2})
        await asyncio.sleep(0.002)
        high = await store.store({"type": "successful_fix", "content": "b", "importance": 0.9})
        await asyncio.sleep(0.002)
        other = await store.store({"type": "agent_learning", "content": "c"})
        assert [e.id for e in await store.get_by_type(MemoryType.SUCCESSFUL_FIX)] == [high, low]
        assert [e.id for e in await store.get_recent_memories(2)] == [other, high]

    async def test_pagination_is_stable_and_strict(self, store: MemoryStore) -> None:
        """list_memories pages cover every entry once; a bad cursor is a ValidationError."""
        ids = set(
            await store.store_many(
                [{"type": "agent_learning", "content": f"m{i}"} for i in range(25)]
            )
        )
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.list_memories(limit=10, cursor=cursor)
            pages += 1
            seen.extend(e.id for e in page.items)
            if not page.has_more:
                assert page.next_cursor is None
                break
            cursor = page.next_cursor
            if pages == 1:
                await store.retrieve(page.items[0].id)  # an access must not reorder pages
        assert pages == 3 and len(seen) == 25 and set(seen) == ids
        with pytest.raises(ValidationError) as info:
            await store.list_memories(limit=10, cursor="not-a-cursor")
        assert info.value.field == "cursor"

    async def test_stats(self, store: MemoryStore) -> None:
        """get_stats counts entries by type, importance, accesses and vectors."""
        a = await store.store(
            {"type": "agent_learning", "content": "a", "importance": 0.2, "embedding": unit(1)}
        )
        await store.store({"type": "successful_fix", "content": "b", "importance": 0.6})
        await store.retrieve(a)
        stats = await store.get_stats()
        assert stats.total == 2
        assert stats.by_type == {MemoryType.AGENT_LEARNING: 1, MemoryType.SUCCESSFUL_FIX: 1}
        assert stats.avg_importance == pytest.approx(0.4)
        assert stats.total_accesses == 1
        assert (stats.with_embedding, stats.without_embedding) == (1, 1)
