"""Bad input: a ValidationError naming the field, and the database unchanged."""

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jetpack.beads import BeadsAdapter
from jetpack.shared.errors import ValidationError


def snapshot(db_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()
        rows += conn.execute("SELECT * FROM task_deps ORDER BY task_id, depends_on").fetchall()
        return rows


BAD_CREATE = [
    ({"title": ""}, "title"),
    ({"title": "x" * 501}, "title"),
    ({}, "title"),
    ({"title": "t", "status": "done"}, "status"),
    ({"title": "t", "status": "claimed"}, "status"),
    ({"title": "t", "priority": "urgent"}, "priority"),
    ({"title": "t", "dependencies": "bd-1"}, "dependencies"),
    ({"title": "t", "dependencies": ["no such"]}, "dependencies"),
    ({"title": "t", "dependencies": ["bd-unknown"]}, "dependencies"),
    ({"title": "t", "estimated_minutes": -1}, "estimated_minutes"),
    ({"title": "t", "max_retries": 101}, "max_retries"),
    ({"title": "t", "tags": [""]}, "tags"),
    ({"title": "t", "required_skills": [1]}, "required_skills"),
    ({"title": "t", "metadata": {"x": float("nan")}}, "metadata"),
    ({"title": "t", "metadata": {"x": "y" * 70_000}}, "metadata"),
    ({"title": "t", "id": "has space"}, "id"),
    ({"title": "t", "surprise": 1}, "surprise"),
    ({"title": "t", "branch": "b" * 256}, "branch"),
    ({"title": "t", "metadata": {"\ud800": 1}}, "metadata"),
    ({"title": "t", "description": "\udfff"}, "description"),
]


@pytest.mark.parametrize(("data", "field"), BAD_CREATE)
async def test_create_refuses_bad_fields(
    store: BeadsAdapter, db_path: Path, data: dict[str, Any], field: str
) -> None:
    await store.create_task({"id": "bd-keep", "title": "already here"})
    before = snapshot(db_path)
    with pytest.raises(ValidationError) as info:
        await store.create_tasks([{"title": "fine"}, data])
    assert info.value.field.split(".")[0] == field
    assert snapshot(db_path) == before


BAD_CALLS = [
    ("claim_next", ("",), {}, "agent_id"),
    ("claim_next", ("has space",), {}, "agent_id"),
    ("claim_next", ("a",), {"skills": "python"}, "skills"),
    ("claim_next", ("a",), {"skills": [""]}, "skills"),
    ("claim_next", ("a",), {"ttl_ms": 0}, "ttl_ms"),
    ("claim_next", ("a",), {"ttl_ms": 1.5}, "ttl_ms"),
    ("claim_task", ("bd-keep", "a"), {"ttl_ms": -5}, "ttl_ms"),
    ("claim_task", ("bd-keep", None), {}, "agent_id"),
    ("renew_claim", ("bd-keep", "a"), {"ttl_ms": True}, "ttl_ms"),
    ("complete_task", ("bd-keep", "a"), {"actual_minutes": -1}, "actual_minutes"),
    ("complete_task", ("bd-keep", "a"), {"result": ["not", "an object"]}, "result"),
    ("fail_task", ("bd-keep", "a", "boom", "meltdown"), {}, "failure_type"),
    ("fail_task", ("bd-keep", "a", None), {}, "error"),
    ("update_task", ("bd-keep", {"priority": "urgent"}), {}, "priority"),
    ("update_task", ("bd-keep", {"title": None}), {}, "title"),
    ("update_task", ("bd-keep", {"dependencies": ["bd-nope"]}), {}, "dependencies"),
    ("update_task", ("bd-keep", {"assigned_agent": "x"}), {}, "assigned_agent"),
    ("list_tasks", ({"status": "nope"},), {}, "status"),
    ("list_tasks", ({"limit": 0},), {}, "limit"),
    ("get_ready_tasks", (-1,), {}, "limit"),
    ("claim_next", ("a",), {"ttl_ms": 2**62}, "ttl_ms"),
    ("claim_task", ("bd-keep", "a"), {"ttl_ms": 366 * 86_400_000}, "ttl_ms"),
    ("renew_claim", ("bd-keep", "a"), {"ttl_ms": 2**62}, "ttl_ms"),
    ("claim_next", ("a",), {"skills": ["py\ud800"]}, "skills"),
    ("fail_task", ("bd-keep", "a", "boom \udc00"), {}, "error"),
    ("complete_task", ("bd-keep", "a"), {"result": {"\ud800": 1}}, "result"),
    ("complete_task", ("bd-keep", "a"), {"result": {"x": "y" * 70_000}}, "result"),
    ("get_task", ("bd-\ud800",), {}, "task_id"),
    ("claim_task", ("bd-\ud800", "a"), {}, "task_id"),
    ("update_task", ("bd-\ud800", {"title": "x"}), {}, "task_id"),
    ("update_task", ("bd-keep", {"metadata": {"\ud800": 1}}), {}, "metadata"),
    ("update_task", ("bd-keep", {"status": "in_progress"}), {}, "status"),
    ("list_tasks", ({"tag": "\ud800"},), {}, "tag"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "field"), BAD_CALLS)
async def test_calls_refuse_bad_arguments(
    store: BeadsAdapter,
    db_path: Path,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    field: str,
) -> None:
    await store.create_task({"id": "bd-keep", "title": "already here"})
    assert await store.claim_task("bd-keep", "a") is not None
    before = snapshot(db_path)
    with pytest.raises(ValidationError) as info:
        await getattr(store, method)(*args, **kwargs)
    assert info.value.field.split(".")[0] == field
    assert snapshot(db_path) == before


def test_constructor_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="claim_ttl_ms"):
        BeadsAdapter(tmp_path / "x.db", claim_ttl_ms=0)
    with pytest.raises(ValidationError, match="retry_base_ms"):
        BeadsAdapter(tmp_path / "x.db", retry_base_ms=-1)
