"""Store behaviour beyond the kit: ids, eviction, cursors, config, registry, schema."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import jetpack.cass
from jetpack.cass import SCHEMA_VERSION, CASSAdapter
from jetpack.cass._schema import SEED_MEMORIES_DDL
from jetpack.shared import MemoryInput, MemoryType
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.registry import create_adapters


def test_public_api() -> None:
    assert set(jetpack.cass.__all__) == {
        "CALLER_MODEL",
        "CASSAdapter",
        "SCHEMA_VERSION",
        "__version__",
    }


async def test_explicit_ids_conflict_and_batches_are_atomic(store: CASSAdapter) -> None:
    await store.store({"id": "note-1", "type": "agent_learning", "content": "x"})
    with pytest.raises(ConflictError):
        await store.store({"id": "note-1", "type": "agent_learning", "content": "y"})
    with pytest.raises(ConflictError):
        await store.store_many(
            [
                {"id": "note-2", "type": "agent_learning", "content": "a"},
                {"id": "note-2", "type": "agent_learning", "content": "b"},
            ]
        )
    assert (await store.get_stats()).total == 1
    assert await store.search("y") == []
    model = MemoryInput(
        type=MemoryType.SUCCESSFUL_FIX, content="from a model", embedding=[1.0, 2.0]
    )
    memory_id = await store.store(model)
    assert (await store.retrieve(memory_id)).embedding_model == "caller"  # type: ignore[union-attr]
    assert await store.store_many([]) == []
    with pytest.raises(ValidationError) as info:
        await store.store_many({"type": "agent_learning", "content": "x"})  # type: ignore[arg-type]
    assert info.value.field == "entries"


async def test_concurrent_retrieves_count_every_access(store: CASSAdapter) -> None:
    memory_id = await store.store({"type": "agent_learning", "content": "popular"})
    await asyncio.gather(*(store.retrieve(memory_id) for _ in range(25)))
    entry = await store.retrieve(memory_id)
    assert entry is not None and entry.access_count == 26 and entry.version == 27


async def test_overflow_evicts_by_retention_never_the_newest(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None, max_entries=40) as store:
        keep = await store.store(
            {"type": "codebase_knowledge", "content": "protected", "importance": 0.0}
        )
        used = await store.store({"type": "agent_learning", "content": "used", "importance": 0.2})
        for _ in range(5):
            await store.retrieve(used)
        await store.store_many(
            [
                {"type": "agent_learning", "content": f"old {i}", "importance": 0.2}
                for i in range(38)
            ]
        )
        newest = await store.store({"type": "agent_learning", "content": "new", "importance": 0.0})
        stats = await store.get_stats()
        assert stats.total == 38  # 41 > 40: down to 95 % of 40
        for memory_id in (keep, used, newest):
            assert await store.retrieve(memory_id) is not None
        # a batch larger than the cap: older entries first, its last entry always survives
        batch = await store.store_many(
            [{"type": "agent_learning", "content": f"b{i}", "importance": 0.1} for i in range(60)]
        )
        assert (await store.get_stats()).total == 38
        assert await store.retrieve(batch[-1]) is not None
        assert await store.retrieve(keep) is not None  # protected types go last
        assert await store.retrieve(used) is None  # older than the batch
        assert await store.adaptive_compact() == 0


async def test_adaptive_compact_order(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None, max_entries=100) as store:
        ids = await store.store_many(
            [
                {"type": "codebase_knowledge", "content": "p", "importance": 0.0},
                {"type": "agent_learning", "content": "low", "importance": 0.1},
                {"type": "agent_learning", "content": "high", "importance": 0.9},
                {"type": "agent_learning", "content": "newest", "importance": 0.0},
            ]
        )
    async with CASSAdapter(db_path, embedder=None, max_entries=2) as store:
        assert await store.adaptive_compact() == 2
        left = {e.content for e in await store.get_recent_memories()}
        # unprotected go first ('low', then 'high'); the newest never
        assert left == {"p", "newest"}
        assert await store.retrieve(ids[3]) is not None


async def test_cursors(store: CASSAdapter) -> None:
    await store.store_many(
        [
            {"type": "agent_learning" if i % 2 else "successful_fix", "content": f"m{i}"}
            for i in range(9)
        ]
    )
    page = await store.list_memories(limit=2, type=MemoryType.SUCCESSFUL_FIX)
    assert [e.content for e in page.items] == ["m8", "m6"] and page.next_cursor
    rest = await store.list_memories(
        limit=10, cursor=page.next_cursor, type=MemoryType.SUCCESSFUL_FIX
    )
    assert [e.content for e in rest.items] == ["m4", "m2", "m0"] and not rest.has_more
    for bad in ("", "c1.", "c1.!!!", "c1.WzEsMiwzXQ", "page-2", "c1.WyJ4IiwgbnVsbF0"):
        with pytest.raises(ValidationError) as info:
            await store.list_memories(cursor=bad)
        assert info.value.field == "cursor"
    with pytest.raises(ValidationError) as info:  # issued for another filter
        await store.list_memories(cursor=page.next_cursor)
    assert info.value.field == "cursor"
    # stable under writes: a page after new stores continues where it was
    first = await store.list_memories(limit=3)
    await store.store({"type": "agent_learning", "content": "late"})
    second = await store.list_memories(limit=3, cursor=first.next_cursor)
    assert [e.content for e in second.items] == ["m5", "m4", "m3"]


async def test_argument_checks(store: CASSAdapter) -> None:
    memory_id = await store.store({"type": "agent_learning", "content": "x"})
    for bad in (True, "0.5", float("nan"), 2):
        with pytest.raises(ValidationError) as info:
            await store.update_importance(memory_id, bad)  # type: ignore[arg-type]
        assert info.value.field == "importance"
    with pytest.raises(ValidationError) as info:
        await store.compact(1.5)
    assert info.value.field == "threshold"
    with pytest.raises(ValidationError) as info:
        await store.get_by_type("nope")  # type: ignore[arg-type]
    assert info.value.field == "type"
    with pytest.raises(ValidationError) as info:
        await store.backfill_embeddings(0)
    assert info.value.field == "batch_size"
    with pytest.raises(ValidationError) as info:
        CASSAdapter(store.db_path, embedder=None, max_entries=0)
    assert info.value.field == "max_entries"
    with pytest.raises(ValidationError) as info:
        CASSAdapter(store.db_path, embedder=None, protected_types=["nope"])
    assert info.value.field == "protected_types"


async def test_from_config_and_registry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = JetpackConfig.model_validate(
        {"cass": {"embedder": "none", "max_entries": 50, "unknown": 1}, "project_dir": tmp_path}
    )
    store = CASSAdapter.from_config(config, agent_id="agent-1")  # the unknown key only warns
    assert "'unknown' in [cass]" in caplog.text
    assert store.db_path == tmp_path / ".cass" / "memories.db"
    assert store.max_entries == 50 and store.embedder is None
    assert CASSAdapter.from_config(config, agent_id="a", max_entries=7).max_entries == 7
    with pytest.raises(ValidationError) as info:
        CASSAdapter.from_config(config, agent_id="agent-1", max_entrys=7)
    assert info.value.field == "max_entrys" and "'max_entries'" in str(info.value)
    async with create_adapters(config, agent_id="agent-1") as adapters:
        assert isinstance(adapters.memory, CASSAdapter)
        memory_id = await adapters.memory.store({"type": "agent_learning", "content": "hello"})
        assert (await adapters.memory.retrieve(memory_id)) is not None


async def test_default_embedder_is_the_local_model(db_path: Path) -> None:
    store = CASSAdapter(db_path)
    assert store.embedder is not None
    assert store.embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert store.embedder.dimensions == 384


async def test_a_seed_only_file_is_upgraded(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.executescript(SEED_MEMORIES_DDL)
        conn.execute(
            "INSERT INTO memories (id, type, content, importance, metadata, has_embedding, "
            "created_at, last_accessed, access_count) "
            "VALUES ('mem-old', 'successful_fix', 'pin the lockfile', 0.7, NULL, 1, 1000, 1000, 2)"
        )
    async with CASSAdapter(db_path, embedder=None) as store:
        hits = await store.search("lockfile")
        assert [h.id for h in hits] == ["mem-old"]
        assert hits[0].metadata == {} and not hits[0].has_embedding and hits[0].access_count == 2
        await store.store({"type": "agent_learning", "content": "new"})
        assert (await store.get_stats()).total == 2
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConflictError):
        async with CASSAdapter(db_path, embedder=None):
            pass


async def test_not_open_is_an_error(db_path: Path) -> None:
    from jetpack.shared.errors import JetpackError

    store = CASSAdapter(db_path, embedder=None)
    with pytest.raises(JetpackError, match="not open"):
        await store.search("x")
