"""Beads JSONL through the TaskStore protocol, on the beads project's own tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jetpack.shared import TaskPriority, TaskStatus
from jetpack.shared.beads_jsonl import (
    export_jsonl,
    import_jsonl,
    issues_to_tasks,
    parse_issues,
    task_to_issue,
)
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.testing import InMemoryTaskStore, sample_path

SAMPLE = sample_path("beads/issues.jsonl")


async def test_the_beads_sample_imports_and_round_trips_through_any_store(tmp_path: Path) -> None:
    issues = parse_issues(SAMPLE.read_text(encoding="utf-8").splitlines())
    store = InMemoryTaskStore()
    assert await import_jsonl(store, SAMPLE) == len(issues) == 824
    closed = sum(i["status"] == "closed" for i in issues)
    assert len(await store.get_tasks_by_status(TaskStatus.COMPLETED)) == closed
    blocks = {
        (i["id"], d["depends_on_id"])
        for i in issues
        for d in i.get("dependencies") or []
        if d.get("type") == "blocks"
    }
    assert {(t.id, dep) for t in await store.list_tasks() for dep in t.dependencies} == blocks
    out = tmp_path / "out.jsonl"
    assert await export_jsonl(store, out) == 824
    assert out.read_bytes() == SAMPLE.read_bytes(), "an unchanged tracker exports byte for byte"
    again = InMemoryTaskStore()
    assert await import_jsonl(again, out) == 824
    assert await again.list_tasks() != []
    assert {t.id: t for t in await again.list_tasks()}.keys() == {
        t.id for t in await store.list_tasks()
    }
    with pytest.raises(ConflictError):
        await import_jsonl(again, out)


def test_mapping_and_errors() -> None:
    issues = parse_issues(
        [
            json.dumps(
                {
                    "id": "b",
                    "title": "B",
                    "priority": 0,
                    "status": "open",
                    "created_at": "2026-01-01T00:00:00Z",
                    "dependencies": [{"issue_id": "b", "depends_on_id": "a", "type": "blocks"}],
                    "labels": ["x"],
                    "issue_type": "bug",
                }
            ),
            "",
        ]
    )
    (task,) = issues_to_tasks(issues)
    assert task.priority is TaskPriority.CRITICAL and task.dependencies == ["a"]
    assert task.status is TaskStatus.PENDING and task.tags == ["x"]
    assert task_to_issue(task)["issue_type"] == "bug", "unknown fields survive"
    with pytest.raises(ValidationError, match="line 1"):
        parse_issues(["{not json"])
    with pytest.raises(ValidationError) as info:
        issues_to_tasks(
            [{"id": "a", "title": "A", "status": "weird", "created_at": "2026-01-01T00:00:00Z"}]
        )
    assert info.value.field == "status"


async def test_import_places_waiting_tasks_and_exports_them_unchanged(tmp_path: Path) -> None:
    """Readiness decides pending/ready on import; export still writes the original status."""
    lines = [
        {"id": "a", "title": "A", "status": "pinned", "created_at": "2026-01-01T00:00:00Z"},
        {
            "id": "b",
            "title": "B",
            "status": "open",
            "created_at": "2026-01-01T00:00:00Z",
            "dependencies": [{"issue_id": "b", "depends_on_id": "a", "type": "blocks"}],
        },
        {"id": "c", "title": "C", "status": "in_progress", "created_at": "2026-01-01T00:00:00Z"},
        {
            "id": "d",
            "title": "D",
            "status": "in_progress",
            "assignee": "agent-7",
            "created_at": "2026-01-01T00:00:00Z",
        },
    ]
    source = tmp_path / "issues.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    store = InMemoryTaskStore()
    assert await import_jsonl(store, source) == 4
    status = {t.id: t.status for t in await store.list_tasks()}
    assert status == {
        "a": TaskStatus.READY,
        "b": TaskStatus.PENDING,
        "c": TaskStatus.READY,
        "d": TaskStatus.IN_PROGRESS,
    }
    held = await store.get_task("d")
    assert held is not None and held.assigned_agent == "agent-7"
    assert held.claim_expires_at is not None
    out = tmp_path / "out.jsonl"
    await export_jsonl(store, out)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    exported = {record["id"]: record["status"] for record in records}
    assert exported == {"a": "pinned", "b": "open", "c": "open", "d": "in_progress"}
