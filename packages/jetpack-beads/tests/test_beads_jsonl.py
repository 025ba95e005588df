"""Beads JSONL import/export, on the beads project's own 824-issue tracker."""

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from jetpack.beads import BeadsAdapter
from jetpack.beads.jsonl import issue_to_task, read_issues, task_to_issue
from jetpack.shared import TaskPriority, TaskStatus
from jetpack.shared.errors import ConflictError, ValidationError
from jetpack.shared.testing import sample_path

SAMPLE = sample_path("beads/issues.jsonl")


def expected_ready(issues: list[dict[str, Any]]) -> set[str]:
    """bd ready, computed independently: open, not deleted, every `blocks` target closed,
    and no parent (transitively) blocked."""
    by_id = {i["id"]: i for i in issues}

    def deps(issue: dict[str, Any], kind: str) -> list[str]:
        return [d["depends_on_id"] for d in issue.get("dependencies") or [] if d["type"] == kind]

    @functools.cache
    def blocked(issue_id: str) -> bool:
        issue = by_id[issue_id]
        if issue["status"] == "closed":
            return False
        if any(by_id[d]["status"] != "closed" for d in deps(issue, "blocks")):
            return True
        return any(blocked(p) for p in deps(issue, "parent-child"))

    return {
        i["id"]
        for i in issues
        if i["status"] == "open" and not i.get("deleted_at") and not blocked(i["id"])
    }


def test_sample_is_there() -> None:
    assert SAMPLE.exists(), f"beads sample not found at {SAMPLE}"


async def test_import_count_ready_export_reimport(store: BeadsAdapter, tmp_path: Path) -> None:
    issues = read_issues(SAMPLE)
    assert await store.import_jsonl(SAMPLE) == len(issues) == 824
    stats = await store.get_stats()
    assert stats.total == 824
    assert stats.by_status[TaskStatus.COMPLETED] == 731
    assert stats.by_status[TaskStatus.FAILED] == 2  # the two tombstones
    ready = {t.id for t in await store.get_ready_tasks()}
    assert ready == expected_ready(issues)
    assert len(ready) == stats.ready == 87

    out = tmp_path / "out.jsonl"
    assert await store.export_jsonl(out) == 824
    # Unchanged issues come out byte for byte as beads wrote them.
    assert out.read_text(encoding="utf-8") == SAMPLE.read_text(encoding="utf-8")

    async with BeadsAdapter(tmp_path / "again.db") as again:
        assert await again.import_jsonl(out) == 824
        first = {t.id: t for t in await store.list_tasks()}
        second = {t.id: t for t in await again.list_tasks()}
        assert first == second
        assert {t.id for t in await again.get_ready_tasks()} == ready


async def test_changes_are_exported(store: BeadsAdapter, tmp_path: Path) -> None:
    await store.import_jsonl(SAMPLE)
    ready = await store.get_ready_tasks()
    target = ready[0]
    claimed = await store.claim_task(target.id, "agent-1")
    assert claimed is not None
    await store.complete_task(target.id, "agent-1", actual_minutes=5)
    await store.update_task(ready[1].id, {"priority": "low", "tags": ["later"]})
    out = tmp_path / "out.jsonl"
    await store.export_jsonl(out)
    exported = {i["id"]: i for i in read_issues(out)}
    original = {i["id"]: i for i in read_issues(SAMPLE)}
    done = exported[target.id]
    assert done["status"] == "closed" and "closed_at" in done
    assert done["issue_type"] == original[target.id]["issue_type"]
    changed = exported[ready[1].id]
    assert changed["priority"] == 3 and changed["labels"] == ["later"]
    assert sum(exported[k] != original[k] for k in original) == 2


async def test_unknown_fields_survive(store: BeadsAdapter, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    issue = {
        "id": "bd-x1",
        "title": "Odd one",
        "description": "",
        "status": "open",
        "priority": 4,
        "issue_type": "spike",
        "created_at": "2025-11-02T21:58:07.295058-08:00",
        "updated_at": "2025-11-02T21:58:07.295058-08:00",
        "future_field": {"nested": [1, 2, 3]},
        "design": "<b>&</b>",
    }
    src.write_text(json.dumps(issue) + "\n", encoding="utf-8")
    await store.import_jsonl(src)
    task = await store.get_task("bd-x1")
    assert task is not None and task.priority is TaskPriority.LOW
    assert task.metadata["beads"]["future_field"] == {"nested": [1, 2, 3]}
    out = tmp_path / "out.jsonl"
    await store.export_jsonl(out)
    assert read_issues(out) == [issue]


def test_status_mapping() -> None:
    base = {"id": "bd-1", "title": "t", "created_at": "2025-01-01T00:00:00Z"}
    held = issue_to_task({**base, "status": "in_progress", "assignee": "alice"})
    assert held.status is TaskStatus.IN_PROGRESS and held.assigned_agent == "alice"
    assert held.claim_expires_at is not None  # a stale beads claim lapses
    assert issue_to_task({**base, "status": "blocked"}).status is TaskStatus.BLOCKED
    tomb = issue_to_task({**base, "status": "open", "deleted_at": "2025-01-02T00:00:00Z"})
    assert tomb.status is TaskStatus.FAILED
    assert task_to_issue(tomb)["status"] == "open"
    gated = issue_to_task(
        {
            **base,
            "dependencies": [
                {"issue_id": "bd-1", "depends_on_id": "bd-2", "type": "blocks"},
                {"issue_id": "bd-1", "depends_on_id": "bd-3", "type": "parent-child"},
                {"issue_id": "bd-1", "depends_on_id": "bd-4", "type": "related"},
                {"issue_id": "bd-1", "depends_on_id": "bd-5", "type": "discovered-from"},
            ],
        }
    )
    assert gated.dependencies == ["bd-2"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("{not json", "line 2"),
        ('["a list"]', "line 2"),
        (
            '{"id": "bd-b", "title": "t", "status": "weird", "created_at": "2025-01-01T00:00:00Z"}',
            "status",
        ),
        (
            '{"id": "bd-b", "title": "t", "priority": 9, "created_at": "2025-01-01T00:00:00Z"}',
            "priority",
        ),
        ('{"id": "bd-b", "title": "", "created_at": "2025-01-01T00:00:00Z"}', "title"),
        ('{"id": "bd b", "title": "t", "created_at": "2025-01-01T00:00:00Z"}', "id"),
        ('{"id": "bd-b", "title": "t", "created_at": "yesterday"}', "created_at"),
        ('{"id": "bd-b", "title": "t", "created_at": "2025-01-01T00:00:00"}', "created_at"),
        (
            '{"id": "bd-b", "title": "t", "labels": [""], "created_at": "2025-01-01T00:00:00Z"}',
            "labels",
        ),
    ],
)
async def test_bad_line_is_refused_and_nothing_written(
    store: BeadsAdapter, tmp_path: Path, line: str, field: str
) -> None:
    src = tmp_path / "bad.jsonl"
    good = '{"id": "bd-a", "title": "fine", "created_at": "2025-01-01T00:00:00Z"}'
    src.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        await store.import_jsonl(src)
    assert info.value.field == field
    assert await store.list_tasks() == []


async def test_unknown_dependency_and_cycle_refused(store: BeadsAdapter, tmp_path: Path) -> None:
    def issue(i: str, dep: str) -> str:
        return json.dumps(
            {
                "id": i,
                "title": i,
                "created_at": "2025-01-01T00:00:00Z",
                "dependencies": [{"issue_id": i, "depends_on_id": dep, "type": "blocks"}],
            }
        )

    src = tmp_path / "in.jsonl"
    src.write_text(issue("bd-a", "bd-zzz") + "\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        await store.import_jsonl(src)
    assert info.value.field == "dependencies"
    src.write_text(issue("bd-a", "bd-b") + "\n" + issue("bd-b", "bd-a") + "\n", encoding="utf-8")
    with pytest.raises(ConflictError, match="cycle"):
        await store.import_jsonl(src)
    assert await store.list_tasks() == []


async def test_reimport_conflicts_unless_replace(store: BeadsAdapter) -> None:
    await store.import_jsonl(SAMPLE)
    with pytest.raises(ConflictError):
        await store.import_jsonl(SAMPLE)
    assert await store.import_jsonl(SAMPLE, replace=True) == 824
    assert (await store.get_stats()).total == 824
