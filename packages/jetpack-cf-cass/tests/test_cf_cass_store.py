"""CloudflareMemoryStore as a backend (config, registry, repr, embedder), its Worker module
(bindings, tsc), zod ≡ pydantic, and the project's vector space on a real Worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jetpack.cf_cass import EDGE_MODULE, CloudflareMemoryStore
from jetpack.shared import MemoryEntry, MemoryInput, MemoryStats, MemoryType
from jetpack.shared.config import load_config
from jetpack.shared.edge import (
    BuildOptions,
    build_worker,
    check_types,
    discover_modules,
    ensure_toolchain,
    wrangler_config,
)
from jetpack.shared.embedders import DEFAULT_LOCAL_MODEL
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.registry import create_store, discover_backends
from jetpack.shared.testing import KitEmbedder
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker

TOKEN = "jp_secret-value-not-to-print"


class OtherEmbedder(KitEmbedder):
    """Same size as the kit's embedder, another model: its vectors must never mix with the kit's."""

    name = "other-hash-16"


def test_from_config_reads_the_cloudflare_table_and_the_token_variable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".jetpack").mkdir()
    (tmp_path / ".jetpack" / "config.toml").write_text(
        '[stores]\nmemory = "cloudflare"\n[cloudflare]\nworker_url = "https://jp.example.dev"\n'
        '[cf_cass]\nembedder = "none"\nmax_entries = 500\nprotected_types = ["successful_fix"]\n'
        "max_entires = 7\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, env={"JETPACK_API_TOKEN": TOKEN})
    with caplog.at_level("WARNING", logger="jetpack.shared.registry"):
        store = create_store(config, "memory")  # the misspelt key only warns
    assert "'max_entires' in [cf_cass]" in caplog.text
    assert "did you mean 'max_entries'" in caplog.text
    assert isinstance(store, CloudflareMemoryStore)
    assert store.max_entries == 500 and store.embedder is None
    assert CloudflareMemoryStore.from_config(config, agent_id="a", max_entries=9).max_entries == 9
    with pytest.raises(ValidationError) as info:  # in code, an unknown option is refused
        CloudflareMemoryStore.from_config(config, agent_id="a", max_entires=9)
    assert info.value.field == "max_entires" and "did you mean 'max_entries'" in str(info.value)
    assert store.protected_types == {MemoryType.SUCCESSFUL_FIX}
    assert repr(store) == "CloudflareMemoryStore('https://jp.example.dev', embedder=None)"
    assert TOKEN not in repr(store) and TOKEN not in str(vars(store))
    with pytest.raises(ValidationError) as info:
        create_store(load_config(tmp_path, env={}), "memory")
    assert info.value.field == "cloudflare.api_token"
    bare = load_config(tmp_path / "nowhere", env={"JETPACK_API_TOKEN": TOKEN})
    with pytest.raises(ValidationError) as info:
        CloudflareMemoryStore.from_config(bare, agent_id="a")
    assert info.value.field == "cloudflare.worker_url"


def test_the_default_embedder_is_the_local_model_jetpack_cass_uses() -> None:
    store = CloudflareMemoryStore("https://jp.example.dev", TOKEN)
    assert store.embedder is not None
    assert (store.embedder.name, store.embedder.dimensions) == (DEFAULT_LOCAL_MODEL, 384)
    with pytest.raises(ValidationError) as info:
        CloudflareMemoryStore("https://jp.example.dev", TOKEN, embedder="nonsense")
    assert info.value.field == "embedder"
    with pytest.raises(ValidationError) as info:
        CloudflareMemoryStore("https://jp.example.dev", TOKEN, max_entries=0)
    assert info.value.field == "max_entries"


def test_registered_as_backend_and_as_edge_module() -> None:
    assert any(b.name == "memory.cloudflare" for b in discover_backends())
    assert EDGE_MODULE in discover_modules()
    assert (EDGE_MODULE.worker_dir / "routes.ts").exists()
    assert EDGE_MODULE.migrations == []  # no D1 tables: a Durable Object per project


def test_bindings_deployed_local_and_with_the_fakes() -> None:
    deployed = wrangler_config([EDGE_MODULE], BuildOptions())
    assert deployed["vectorize"] == [{"binding": "VECTORIZE", "index_name": "jetpack-memory"}]
    assert deployed["ai"] == {"binding": "AI"}
    assert {"name": "MEMORY", "class_name": "MemoryDO"} in deployed["durable_objects"]["bindings"]
    assert deployed["migrations"] == [{"tag": "memory-v1", "new_sqlite_classes": ["MemoryDO"]}]
    assert deployed["vars"]["JETPACK_VECTORIZE_DIMENSIONS"] == "384"
    local = wrangler_config([EDGE_MODULE], BuildOptions(local=True))
    assert "vectorize" not in local and "ai" not in local
    fakes = wrangler_config(
        [EDGE_MODULE], BuildOptions(local=True, features={"memory_fakes": {"delay_ms": 700}})
    )
    names = {b["name"]: b["class_name"] for b in fakes["durable_objects"]["bindings"]}
    assert names == {
        "MEMORY": "MemoryDO",
        "FAKE_VECTORIZE": "FakeVectorize",
        "FAKE_AI": "FakeWorkersAI",
    }
    assert fakes["vars"]["FAKE_VECTORIZE_DELAY_MS"] == "700"
    with pytest.raises(ValueError, match="local test builds"):
        wrangler_config([EDGE_MODULE], BuildOptions(features={"memory_fakes": True}))


def test_the_worker_with_the_memory_module_type_checks(tmp_path: Path) -> None:
    toolchain = ensure_toolchain()
    built = build_worker(tmp_path / "worker", modules=[EDGE_MODULE], toolchain=toolchain)
    index = (built.root / "src" / "index.ts").read_text(encoding="utf-8")
    assert "export { MemoryDO, FakeVectorize, FakeWorkersAI }" in index
    check_types(built, toolchain)


def _properties(doc: dict[str, Any], name: str) -> tuple[set[str], set[str]]:
    schema = doc["components"]["schemas"][name]
    return set(schema["properties"]), set(schema.get("required", []))


def test_zod_schemas_name_the_same_fields_as_the_pydantic_models(edge_worker: EdgeWorker) -> None:
    status, doc = edge_worker.call("GET", "/api/openapi.json")
    assert status == 200
    fields, required = _properties(doc, "MemoryWrite")
    assert fields == set(MemoryInput.model_fields) | {"embedding_model"}
    assert required <= {"type", "content"}
    for zod_name, model in (("MemoryEntry", MemoryEntry), ("MemoryStats", MemoryStats)):
        fields, _ = _properties(doc, zod_name)
        assert fields == set(model.model_fields), zod_name
    for path in (
        "/api/memory",
        "/api/memory/{id}",
        "/api/memory/search",
        "/api/memory/semantic",
        "/api/memory/hybrid",
        "/api/memory/compact",
        "/api/memory/backfill",
        "/api/memory/_stats",
    ):
        assert path in doc["paths"], path


async def test_open_needs_the_memory_module_and_a_live_token(edge_project: EdgeProject) -> None:
    async with CloudflareMemoryStore(edge_project.url, edge_project.token, embedder=None) as store:
        assert await store.retrieve("mem-none") is None
        state = await store.index_state()
        assert (state.index, state.vectors, state.dimensions) == ("built-in", 0, None)


def _unit(dims: int, *hot: int) -> list[float]:
    return [1.0 if i in hot else 0.0 for i in range(dims)]


async def test_the_project_records_its_vector_space_and_refuses_another(
    edge_project: EdgeProject,
) -> None:
    url, token = edge_project.url, edge_project.token
    async with CloudflareMemoryStore(url, token, embedder=KitEmbedder()) as kit:
        first = await kit.store({"type": "agent_learning", "content": "lease renewal keeps files"})
        state = await kit.index_state()
        assert (state.embedding_model, state.dimensions) == ("kit-hash-16", 16)
        stats = await kit.get_stats()
        assert (stats.embedding_model, stats.embedding_dimensions) == ("kit-hash-16", 16)
    async with CloudflareMemoryStore(url, token, embedder=OtherEmbedder()) as other:
        with pytest.raises(ValidationError) as info:
            await other.store({"type": "agent_learning", "content": "made by another model"})
        assert info.value.field == "embedding" and "kit-hash-16" in info.value.reason
        with pytest.raises(ValidationError) as info:
            await other.store_many([{"type": "agent_learning", "content": "x"}] * 3)
        assert info.value.field.endswith("embedding")
        with pytest.raises(ValidationError) as info:
            await other.semantic_search_by_query("lease renewal")
        assert info.value.field == "embedding"
    async with CloudflareMemoryStore(url, token, embedder=None) as plain:
        assert (await plain.get_stats()).total == 1, "a refused store wrote something"
        caller = await plain.store(
            {"type": "agent_learning", "content": "supplied", "embedding": _unit(16, 3)}
        )
        with pytest.raises(ValidationError) as info:
            await plain.store({"type": "agent_learning", "content": "x", "embedding": _unit(8, 1)})
        assert info.value.field == "embedding" and "16" in info.value.reason
        hits = await plain.semantic_search(_unit(16, 3), limit=1)
        assert [h.id for h in hits] == [caller]
        entry = await plain.retrieve(first)
        assert entry is not None and entry.embedding_model == "kit-hash-16"
        supplied = await plain.retrieve(caller)
        assert supplied is not None and supplied.embedding_model == "caller"


async def test_a_batch_over_one_mib_is_one_transaction(edge_project: EdgeProject) -> None:
    items: list[dict[str, Any]] = [
        {"id": f"big-{i}", "type": "agent_learning", "content": f"note {i} " + "x" * 700}
        for i in range(2000)
    ]
    async with CloudflareMemoryStore(
        edge_project.url, edge_project.token, embedder=KitEmbedder(), max_entries=100_000
    ) as store:
        with pytest.raises(ConflictError, match="big-0"):  # the last id repeats the first
            await store.store_many([*items, {**items[0], "content": "again"}])
        assert (await store.get_stats()).total == 0
        ids = await store.store_many(items)
        assert ids == [str(i["id"]) for i in items]
        stats = await store.get_stats()
        assert stats.total == 2000 and stats.with_embedding == 2000
        assert [h.id for h in await store.search("note 1999", limit=1)] == ["big-1999"]


async def test_max_entries_evicts_in_the_write_down_to_95_percent(
    edge_project: EdgeProject,
) -> None:
    async with CloudflareMemoryStore(
        edge_project.url, edge_project.token, embedder=KitEmbedder(), max_entries=40
    ) as store:
        kept = await store.store(
            {"type": "codebase_knowledge", "content": "protected", "importance": 0.0}
        )
        important = await store.store(
            {"type": "agent_learning", "content": "important", "importance": 1.0}
        )
        await store.store_many(
            [
                {"type": "agent_learning", "content": f"filler {i}", "importance": 0.1}
                for i in range(30)
            ]
        )
        probe = await _vector(store, "filler 1")
        assert len(await store.semantic_search(probe, limit=100)) == 32  # the index is loaded
        batch = await store.store_many(
            [
                {"type": "agent_learning", "content": f"late {i}", "importance": 0.0}
                for i in range(15)
            ]
        )
        stats = await store.get_stats()
        assert stats.total == 38  # 47 > 40: down to 40 - 40 // 20
        assert stats.with_embedding == 38
        for memory_id in (kept, important, batch[-1]):
            assert await store.retrieve(memory_id) is not None
        left = await store.list_memories(limit=100)
        assert {e.id for e in left.items} >= set(batch), "older entries go before the batch's"
        # The in-memory index lost the evicted vectors: 38 slots, 38 live memories.
        assert len(await store.semantic_search(probe, limit=38)) == 38
        assert (await store.index_state()).vectors == 38


async def _vector(store: CloudflareMemoryStore, text: str) -> list[float]:
    assert store.embedder is not None
    (vector,) = await store.embedder.embed([text])
    return vector
