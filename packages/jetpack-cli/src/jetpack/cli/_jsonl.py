"""Beads-style JSONL: one issue per line, read and written through any TaskStore.

Beads fields map as follows: ``status`` open → pending, closed → completed
(in_progress becomes pending: a claim cannot be imported); ``priority`` 0 → critical,
1 → high, 2 → medium, 3 and 4 → low; ``labels`` → tags; ``dependencies`` entries of
type ``blocks`` (or without a type) → dependencies. Jetpack's own fields
(``required_skills``, ``estimated_minutes``, ``max_retries``, ``metadata``) are
written alongside and read back, so an export re-imports losslessly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jetpack.shared import Task, TaskInput, TaskPriority, TaskStatus, TaskStore, parse
from jetpack.shared.errors import ValidationError

__all__ = ["export_jsonl", "import_jsonl", "parse_jsonl", "task_to_beads"]

_STATUS_IN = {
    "open": TaskStatus.PENDING,
    "in_progress": TaskStatus.PENDING,
    "claimed": TaskStatus.PENDING,
    "closed": TaskStatus.COMPLETED,
    "done": TaskStatus.COMPLETED,
}
_STATUS_OUT = {
    TaskStatus.PENDING: "open",
    TaskStatus.READY: "open",
    TaskStatus.CLAIMED: "in_progress",
    TaskStatus.IN_PROGRESS: "in_progress",
    TaskStatus.BLOCKED: "blocked",
    TaskStatus.COMPLETED: "closed",
    TaskStatus.FAILED: "failed",
}
_PRIORITY_IN = {0: TaskPriority.CRITICAL, 1: TaskPriority.HIGH, 2: TaskPriority.MEDIUM}
_PRIORITY_OUT = {
    TaskPriority.CRITICAL: 0,
    TaskPriority.HIGH: 1,
    TaskPriority.MEDIUM: 2,
    TaskPriority.LOW: 3,
}


def _status(value: Any) -> TaskStatus:
    if isinstance(value, str):
        if value in _STATUS_IN:
            return _STATUS_IN[value]
        try:
            status = TaskStatus(value)
        except ValueError:
            raise ValidationError("status", f"unknown status {value!r}") from None
        return (
            TaskStatus.PENDING if status in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS) else status
        )
    return TaskStatus.PENDING


def _priority(value: Any) -> TaskPriority:
    if isinstance(value, int) and not isinstance(value, bool):
        return _PRIORITY_IN.get(value, TaskPriority.LOW)
    if isinstance(value, str):
        try:
            return TaskPriority(value)
        except ValueError:
            raise ValidationError("priority", f"unknown priority {value!r}") from None
    return TaskPriority.MEDIUM


def _dependencies(issue: Mapping[str, Any]) -> list[str]:
    deps: list[str] = []
    for dep in issue.get("dependencies") or []:
        if isinstance(dep, str):
            deps.append(dep)
        elif isinstance(dep, Mapping) and dep.get("type", "blocks") == "blocks":
            target = dep.get("depends_on_id") or dep.get("id")
            if isinstance(target, str):
                deps.append(target)
    return deps


def parse_jsonl(lines: Iterable[str]) -> list[TaskInput]:
    """Parse beads JSONL into task inputs, ordered so dependencies come first."""
    inputs: list[TaskInput] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            issue = json.loads(line)
        except ValueError as exc:
            raise ValidationError(f"line {number}", f"not JSON: {exc}") from exc
        if not isinstance(issue, Mapping):
            raise ValidationError(f"line {number}", "not a JSON object")
        data = {
            "id": issue.get("id"),
            "title": issue.get("title"),
            "description": issue.get("description") or None,
            "status": _status(issue.get("status")),
            "priority": _priority(issue.get("priority")),
            "dependencies": _dependencies(issue),
            "tags": list(issue.get("labels") or issue.get("tags") or []),
            "required_skills": list(issue.get("required_skills") or []),
            "estimated_minutes": issue.get("estimated_minutes"),
            "max_retries": issue.get("max_retries", 2),
            "metadata": dict(issue.get("metadata") or {}),
        }
        if issue.get("issue_type"):
            data["metadata"].setdefault("issue_type", issue["issue_type"])
        try:
            inputs.append(parse(TaskInput, data))
        except ValidationError as exc:
            raise ValidationError(f"line {number}: {exc.field}", exc.reason) from exc
    return _topological(inputs)


def _topological(inputs: list[TaskInput]) -> list[TaskInput]:
    by_id = {t.id: t for t in inputs if t.id}
    ordered: list[TaskInput] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def visit(task: TaskInput) -> None:
        key = task.id or str(id(task))
        if key in placed:
            return
        if key in visiting:
            raise ValidationError("dependencies", f"cycle through {key!r}")
        visiting.add(key)
        for dep in task.dependencies:
            if dep in by_id:
                visit(by_id[dep])
        visiting.discard(key)
        placed.add(key)
        ordered.append(task)

    for task in inputs:
        visit(task)
    return ordered


async def import_jsonl(store: TaskStore, lines: Iterable[str]) -> tuple[list[Task], list[str]]:
    """Create the file's tasks in one transaction; ids that exist already are skipped."""
    inputs = parse_jsonl(lines)
    skipped = [t.id for t in inputs if t.id and await store.get_task(t.id) is not None]
    fresh = [t for t in inputs if t.id not in skipped]
    created = await store.create_tasks(fresh) if fresh else []
    return created, [s for s in skipped if s]


def task_to_beads(task: Task) -> dict[str, Any]:
    """One task as a beads issue (plus Jetpack's own fields)."""
    data: dict[str, Any] = {
        "id": task.id,
        "title": task.title,
        "description": task.description or "",
        "status": _STATUS_OUT[task.status],
        "priority": _PRIORITY_OUT[task.priority],
        "issue_type": task.metadata.get("issue_type", "task"),
        "labels": task.tags,
        "dependencies": [
            {"issue_id": task.id, "depends_on_id": dep, "type": "blocks"}
            for dep in task.dependencies
        ],
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "required_skills": task.required_skills,
        "max_retries": task.max_retries,
        "metadata": {k: v for k, v in task.metadata.items() if k != "issue_type"},
    }
    if task.completed_at:
        data["closed_at"] = task.completed_at.isoformat()
    if task.estimated_minutes is not None:
        data["estimated_minutes"] = task.estimated_minutes
    if task.assigned_agent:
        data["assignee"] = task.assigned_agent
    return data


async def export_jsonl(store: TaskStore) -> list[str]:
    """Every task as one JSONL line, in creation order."""
    return [
        json.dumps(task_to_beads(t), separators=(",", ":"), ensure_ascii=False)
        for t in await store.list_tasks()
    ]
