"""Beads JSONL through the TaskStore protocol, on the beads project's own tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jetpack.cli import export_jsonl, import_jsonl, parse_jsonl
from jetpack.shared import TaskPriority, TaskStatus
from jetpack.shared.errors import ValidationError
from jetpack.shared.testing import InMemoryTaskStore

# The sample sits beside the repository: <repo>/../shared/data/beads/issues.jsonl
SAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "beads" / "issues.jsonl"


async def test_the_beads_sample_imports_and_round_trips() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    issues = [json.loads(line) for line in lines]
    store = InMemoryTaskStore()
    created, skipped = await import_jsonl(store, lines)
    assert len(created) == len(issues) == 824 and skipped == []
    closed = sum(i["status"] == "closed" for i in issues)
    assert len(await store.get_tasks_by_status(TaskStatus.COMPLETED)) == closed
    blocks = {
        (i["id"], d["depends_on_id"])
        for i in issues
        for d in i.get("dependencies") or []
        if d.get("type") == "blocks"
    }
    assert {(t.id, dep) for t in await store.list_tasks() for dep in t.dependencies} == blocks
    again = InMemoryTaskStore()
    recreated, _ = await import_jsonl(again, await export_jsonl(store))
    assert len(recreated) == 824
    assert [
        t.model_dump(include={"id", "title", "status", "priority", "dependencies", "tags"})
        for t in await again.list_tasks()
    ] == [
        t.model_dump(include={"id", "title", "status", "priority", "dependencies", "tags"})
        for t in await store.list_tasks()
    ]


def test_mapping_and_errors() -> None:
    tasks = parse_jsonl(
        [
            json.dumps(
                {
                    "id": "b",
                    "title": "B",
                    "priority": 0,
                    "status": "in_progress",
                    "dependencies": [{"depends_on_id": "a", "type": "blocks"}],
                    "labels": ["x"],
                }
            ),
            json.dumps({"id": "a", "title": "A", "priority": 4, "status": "open"}),
            "",
        ]
    )
    assert [t.id for t in tasks] == ["a", "b"]  # dependencies first
    assert tasks[1].priority is TaskPriority.CRITICAL and tasks[0].priority is TaskPriority.LOW
    assert tasks[1].status is TaskStatus.PENDING and tasks[1].tags == ["x"]
    with pytest.raises(ValidationError, match="line 1"):
        parse_jsonl(["{not json"])
    with pytest.raises(ValidationError, match="status"):
        parse_jsonl([json.dumps({"id": "a", "title": "A", "status": "weird"})])
    with pytest.raises(ValidationError, match="cycle"):
        parse_jsonl(
            [
                json.dumps({"id": "a", "title": "A", "dependencies": ["b"]}),
                json.dumps({"id": "b", "title": "B", "dependencies": ["a"]}),
            ]
        )
