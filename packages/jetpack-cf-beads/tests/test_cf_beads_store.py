"""CloudflareTaskStore as a backend: config, registry, repr; its Worker module; zod ≡ pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jetpack.cf_beads import EDGE_MODULE, CloudflareTaskStore
from jetpack.shared import Task, TaskInput, TaskUpdate
from jetpack.shared.config import load_config
from jetpack.shared.edge import build_worker, check_types, discover_modules, ensure_toolchain
from jetpack.shared.errors import ValidationError
from jetpack.shared.registry import create_store, discover_backends
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker

TOKEN = "jp_secret-value-not-to-print"


def test_from_config_reads_the_cloudflare_table_and_the_token_variable(tmp_path: Path) -> None:
    (tmp_path / ".jetpack").mkdir()
    (tmp_path / ".jetpack" / "config.toml").write_text(
        '[stores]\ntasks = "cloudflare"\n[cloudflare]\nworker_url = "https://jp.example.dev"\n'
        "[cf_beads]\nretry_base_ms = 1234\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, env={"JETPACK_API_TOKEN": TOKEN})
    store = create_store(config, "tasks")
    assert isinstance(store, CloudflareTaskStore)
    assert store.retry_base_ms == 1234
    assert repr(store) == "CloudflareTaskStore('https://jp.example.dev')"
    assert TOKEN not in repr(store) and TOKEN not in str(vars(store))
    with pytest.raises(ValidationError) as info:
        create_store(load_config(tmp_path, env={}), "tasks")
    assert info.value.field == "cloudflare.api_token"
    bare = load_config(tmp_path / "nowhere", env={"JETPACK_API_TOKEN": TOKEN})
    with pytest.raises(ValidationError) as info:
        CloudflareTaskStore.from_config(bare, agent_id="a")
    assert info.value.field == "cloudflare.worker_url"


def test_registered_as_backend_and_as_edge_module() -> None:
    assert any(b.name == "tasks.cloudflare" for b in discover_backends())
    assert EDGE_MODULE in discover_modules()
    assert (EDGE_MODULE.worker_dir / "routes.ts").exists()
    assert [m.name for m in EDGE_MODULE.migrations] == ["0001_init.sql"]


def test_the_whole_worker_type_checks(tmp_path: Path) -> None:
    toolchain = ensure_toolchain()
    built = build_worker(tmp_path / "worker", toolchain=toolchain)
    assert "tasks" in [m.name for m in built.modules]
    check_types(built, toolchain)


def _properties(doc: dict[str, Any], name: str) -> tuple[set[str], set[str]]:
    schema = doc["components"]["schemas"][name]
    return set(schema["properties"]), set(schema.get("required", []))


def test_zod_schemas_name_the_same_fields_as_the_pydantic_models(edge_worker: EdgeWorker) -> None:
    status, doc = edge_worker.call("GET", "/api/openapi.json")
    assert status == 200
    for zod_name, model in (("Task", Task), ("TaskInput", TaskInput), ("TaskUpdate", TaskUpdate)):
        fields, required = _properties(doc, zod_name)
        assert fields == set(model.model_fields), zod_name
        needed = {n for n, f in model.model_fields.items() if f.is_required()}
        assert needed <= required | {"title"} and required <= set(model.model_fields), zod_name
    paths = doc["paths"]
    for path in ("/api/tasks", "/api/tasks/{id}", "/api/tasks/claim-next", "/api/tasks/{id}/fail"):
        assert path in paths


async def test_open_needs_the_tasks_module_and_a_live_token(edge_project: EdgeProject) -> None:
    async with CloudflareTaskStore(edge_project.url, edge_project.token) as store:
        assert await store.get_task("bd-none") is None
