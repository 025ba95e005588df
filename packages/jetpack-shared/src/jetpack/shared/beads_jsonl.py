"""Beads interop: read and write beads' ``issues.jsonl`` with any TaskStore.

The mapping is pure; :func:`import_jsonl` writes whole tasks through
``TaskStore.import_tasks`` and :func:`export_jsonl` reads ``list_tasks``, so the
same file moves between the local store, the edge store and beads itself.

Mapping (beads → Jetpack; the README has the full table):

- ``status``: open → pending, in_progress/hooked → in_progress (a claim of
  the assignee that lapses after the store's claim TTL unless renewed; without
  an assignee → pending), blocked/deferred → blocked, closed → completed,
  pinned → pending; a tombstone (status ``tombstone`` or a ``deleted_at``) →
  failed, so it is never claimed. The store then places waiting tasks by
  readiness (pending or ready; blocked below a failed or blocked task); both
  pending and ready export as the original open/pinned.
- ``priority``: 0 critical, 1 high, 2 medium, 3 and 4 low.
- ``dependencies``: ``blocks`` edges gate readiness, as in ``bd ready``, and
  become Jetpack ``dependencies``; ``parent-child``, ``discovered-from`` and
  ``related`` are kept but never gate.
- ``labels`` → ``tags``, ``estimated_minutes`` → ``estimated_minutes``,
  ``created_at``/``updated_at``/``closed_at`` → ``created_at``/``updated_at``/
  ``completed_at``.
- Jetpack fields beads lacks (required skills, retries, branches, Jetpack's
  own metadata) travel in a ``jetpack`` object, written only when not default.
- Everything else (issue_type, notes, comments, design, tombstone fields,
  unknown fields) and the exact original values of lossy fields are kept in
  ``metadata["beads"]``; export puts them back, so an unchanged issue comes
  out as it went in (same keys and values).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jetpack.shared._base import parse
from jetpack.shared._protocols import TaskStore
from jetpack.shared._tasks import Task, TaskPriority, TaskStatus
from jetpack.shared._time import from_ms, to_ms, utcnow
from jetpack.shared.errors import JetpackError, ValidationError
from jetpack.shared.rules import DEFAULT_CLAIM_TTL_MS

__all__ = [
    "BEADS_KEY",
    "JETPACK_KEY",
    "dumps_issue",
    "export_jsonl",
    "export_lines",
    "import_jsonl",
    "issue_to_task",
    "issues_to_tasks",
    "parse_issues",
    "read_issues",
    "task_to_issue",
]

BEADS_KEY = "beads"
"""Key of ``Task.metadata`` that keeps what a Jetpack task has no column for."""

_STATUS_IN = {
    "open": TaskStatus.PENDING,
    "pinned": TaskStatus.PENDING,
    "in_progress": TaskStatus.IN_PROGRESS,
    "hooked": TaskStatus.IN_PROGRESS,
    "blocked": TaskStatus.BLOCKED,
    "deferred": TaskStatus.BLOCKED,
    "closed": TaskStatus.COMPLETED,
    "tombstone": TaskStatus.FAILED,
}
_STATUS_OUT = {
    TaskStatus.PENDING: "open",
    TaskStatus.READY: "open",
    TaskStatus.CLAIMED: "in_progress",
    TaskStatus.IN_PROGRESS: "in_progress",
    TaskStatus.BLOCKED: "blocked",
    TaskStatus.COMPLETED: "closed",
    TaskStatus.FAILED: "closed",
}
_WAITING = {TaskStatus.PENDING, TaskStatus.READY}
_PRIORITY_IN = [
    TaskPriority.CRITICAL,
    TaskPriority.HIGH,
    TaskPriority.MEDIUM,
    TaskPriority.LOW,
    TaskPriority.LOW,
]
_PRIORITY_OUT = {p: i for i, p in enumerate(_PRIORITY_IN[:4])}
JETPACK_KEY = "jetpack"
"""Issue key holding what beads has no field for (skills, retries, own metadata)."""

_MAPPED = {
    JETPACK_KEY,
    "id",
    "title",
    "description",
    "status",
    "priority",
    "labels",
    "estimated_minutes",
    "created_at",
    "updated_at",
    "closed_at",
    "dependencies",
    "assignee",
}
_FIELD_NAMES = {"tags": "labels", "completed_at": "closed_at", "assigned_agent": "assignee"}
"""Task field → the beads field it came from, for error messages."""
_KEY_ORDER = (
    "id",
    "title",
    "description",
    "design",
    "acceptance_criteria",
    "notes",
    "status",
    "priority",
    "issue_type",
    "assignee",
    "estimated_minutes",
    "created_at",
    "created_by",
    "updated_at",
    "closed_at",
    "close_reason",
    "external_ref",
    "labels",
    "dependencies",
    "comments",
)


def _time_in(value: object, field: str, where: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError(field, f"{where}: must be an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(field, f"{where}: not an ISO 8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise ValidationError(field, f"{where}: timestamp has no time zone: {value!r}")
    return from_ms(to_ms(parsed))  # stored with millisecond precision


def _time_out(value: datetime, original: object) -> str:
    """The original text when it still names the same millisecond, else ISO UTC."""
    if isinstance(original, str):
        try:
            if from_ms(to_ms(datetime.fromisoformat(original))) == value:
                return original
        except ValueError:
            pass
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_tombstone(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "tombstone" or bool(record.get("deleted_at"))


def issue_to_task(
    record: Mapping[str, Any], *, where: str = "issue", claim_ttl_ms: int = DEFAULT_CLAIM_TTL_MS
) -> Task:
    """Map one beads issue to a Jetpack task; ValidationError names the bad field."""
    if not isinstance(record, Mapping):
        raise ValidationError("issue", f"{where}: must be a JSON object")
    status_text = record.get("status", "open")
    if status_text not in _STATUS_IN:
        raise ValidationError("status", f"{where}: unknown beads status {status_text!r}")
    status = TaskStatus.FAILED if _is_tombstone(record) else _STATUS_IN[status_text]
    priority = record.get("priority", 2)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
        raise ValidationError("priority", f"{where}: must be an integer 0-4")
    deps = record.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, Mapping) for d in deps):
        raise ValidationError("dependencies", f"{where}: must be a list of objects")
    blocks = [d.get("depends_on_id") for d in deps if d.get("type", "blocks") == "blocks"]
    now = utcnow()
    held = status is TaskStatus.IN_PROGRESS and bool(record.get("assignee"))
    if status is TaskStatus.IN_PROGRESS and not held:
        status = TaskStatus.PENDING  # nobody to hold the claim: back in the queue
    extras = {k: v for k, v in record.items() if k not in _MAPPED}
    extras["status"] = status_text
    extras["priority"] = priority
    for key in ("created_at", "updated_at", "closed_at", "dependencies", "assignee"):
        if key in record:
            extras[key] = record[key]
    own = _jetpack_fields_in(record.get(JETPACK_KEY), where)
    created = _time_in(record["created_at"], "created_at", where) if "created_at" in record else now
    closed = record.get("closed_at")
    data: dict[str, Any] = {
        "id": record.get("id"),
        "title": record.get("title"),
        "description": record.get("description"),
        "status": status,
        "priority": _PRIORITY_IN[priority],
        "dependencies": list(dict.fromkeys(blocks)),
        "tags": record.get("labels") or [],
        "estimated_minutes": record.get("estimated_minutes"),
        "created_at": created,
        "updated_at": _time_in(record["updated_at"], "updated_at", where)
        if "updated_at" in record
        else created,
        "completed_at": _time_in(closed, "closed_at", where) if closed else None,
        "assigned_agent": record.get("assignee") if held else None,
        "claim_expires_at": now + timedelta(milliseconds=claim_ttl_ms) if held else None,
        "last_error": f"deleted: {record.get('delete_reason') or 'tombstone'}"
        if _is_tombstone(record)
        else None,
        **own,
        "metadata": {**own.get("metadata", {}), BEADS_KEY: extras},
    }
    try:
        return parse(Task, data)
    except ValidationError as exc:
        field = exc.field.split(".")[0]
        field = _FIELD_NAMES.get(field, field)
        raise ValidationError(field, f"{where}: {exc.reason}") from exc


def _jetpack_fields_in(value: object, where: str) -> dict[str, Any]:
    """Task fields from the issue's ``jetpack`` object (written by :func:`task_to_issue`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(JETPACK_KEY, f"{where}: must be a JSON object")
    fields: dict[str, Any] = {
        key: value[key]
        for key in ("required_skills", "max_retries", "retry_count", "branch", "origin_branch")
        if key in value
    }
    metadata = value.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise ValidationError(JETPACK_KEY, f"{where}: metadata must be a JSON object")
    return fields | {"metadata": dict(metadata)}


def _jetpack_fields_out(task: Task) -> dict[str, Any]:
    """What beads has no field for: only values that differ from the defaults."""
    own: dict[str, Any] = {}
    if task.required_skills:
        own["required_skills"] = list(task.required_skills)
    if task.max_retries != Task.model_fields["max_retries"].default:
        own["max_retries"] = task.max_retries
    if task.retry_count:
        own["retry_count"] = task.retry_count
    if task.branch:
        own["branch"] = task.branch
    if task.origin_branch:
        own["origin_branch"] = task.origin_branch
    metadata = {k: v for k, v in task.metadata.items() if k != BEADS_KEY}
    if metadata:
        own["metadata"] = metadata
    return own


def task_to_issue(task: Task) -> dict[str, Any]:
    """Map a Jetpack task to a beads issue (the inverse of :func:`issue_to_task`)."""
    extras: dict[str, Any] = dict(task.metadata.get(BEADS_KEY) or {})
    orig_status = extras.pop("status", None)
    orig_priority = extras.pop("priority", None)
    tombstone = _is_tombstone({**extras, "status": orig_status})
    imported_status = (
        TaskStatus.FAILED if tombstone else _STATUS_IN.get(str(orig_status), TaskStatus.PENDING)
    )
    # A store places waiting tasks (pending/ready) by readiness: both are "open".
    same = imported_status is task.status or {imported_status, task.status} <= _WAITING
    status = orig_status if orig_status and same else None
    status = status or _STATUS_OUT[task.status]
    priority = orig_priority
    if not (
        isinstance(priority, int) and 0 <= priority <= 4 and _PRIORITY_IN[priority] is task.priority
    ):
        priority = _PRIORITY_OUT[task.priority]
    issue: dict[str, Any] = {"id": task.id, "title": task.title}
    if task.description is not None:
        issue["description"] = task.description
    issue["status"] = status
    issue["priority"] = priority
    if task.assigned_agent and task.status in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS):
        issue["assignee"] = task.assigned_agent
    elif "assignee" in extras:
        issue["assignee"] = extras["assignee"]
    if task.estimated_minutes is not None:
        issue["estimated_minutes"] = task.estimated_minutes
    issue["created_at"] = _time_out(task.created_at, extras.get("created_at"))
    issue["updated_at"] = _time_out(task.updated_at, extras.get("updated_at"))
    if status == "closed":
        closed = task.completed_at or task.updated_at
        issue["closed_at"] = _time_out(closed, extras.get("closed_at"))
        if task.status is TaskStatus.FAILED and "close_reason" not in extras:
            issue["close_reason"] = f"failed: {task.last_error or 'out of retries'}"
    if task.tags:
        issue["labels"] = list(task.tags)
    deps = _dependencies_out(task, extras.get("dependencies") or [])
    if deps:
        issue["dependencies"] = deps
    for key, value in extras.items():
        if key not in _MAPPED:
            issue[key] = value
    own = _jetpack_fields_out(task)
    if own:
        issue[JETPACK_KEY] = own
    ordered = {k: issue[k] for k in _KEY_ORDER if k in issue}
    ordered.update((k, v) for k, v in issue.items() if k not in ordered)
    return ordered


def _dependencies_out(task: Task, original: list[Any]) -> list[dict[str, Any]]:
    gating = list(task.dependencies)
    out: list[dict[str, Any]] = []
    covered: set[str] = set()
    for dep in original:
        if not isinstance(dep, Mapping):
            continue
        target = dep.get("depends_on_id")
        if dep.get("type", "blocks") == "blocks":
            if target not in gating:
                continue  # removed since the import
            covered.add(str(target))
        out.append(dict(dep))
    when = _time_out(task.updated_at, None)
    for target in gating:
        if target not in covered:
            out.append(
                {"issue_id": task.id, "depends_on_id": target, "type": "blocks", "created_at": when}
            )
    return out


_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def dumps_issue(issue: Mapping[str, Any]) -> str:
    """One JSONL line as beads (Go's encoding/json) writes it: compact, HTML-safe escapes."""
    return json.dumps(issue, ensure_ascii=False, separators=(",", ":")).translate(_GO_ESCAPES)


def parse_issues(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Parse JSONL lines (blank lines skipped); a bad line is a ValidationError naming it."""
    issues = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"line {number}", f"not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ValidationError(f"line {number}", "must be a JSON object")
        issues.append(record)
    return issues


def read_issues(path: str | Path) -> list[dict[str, Any]]:
    """Parse a JSONL file; a bad line is a ValidationError naming its number."""
    with Path(path).open(encoding="utf-8") as handle:
        return parse_issues(handle)


def issues_to_tasks(
    issues: Iterable[Mapping[str, Any]], *, claim_ttl_ms: int = DEFAULT_CLAIM_TTL_MS
) -> list[Task]:
    """Map parsed issues to tasks; errors name the line and the issue id."""
    return [
        issue_to_task(issue, where=f"line {n} ({issue.get('id')})", claim_ttl_ms=claim_ttl_ms)
        for n, issue in enumerate(issues, 1)
    ]


def export_lines(tasks: Iterable[Task]) -> list[str]:
    """Tasks as beads JSONL lines (with newlines), sorted by id."""
    return [dumps_issue(task_to_issue(task)) + "\n" for task in sorted(tasks, key=lambda t: t.id)]


async def import_jsonl(
    store: TaskStore,
    path: str | Path,
    *,
    replace: bool = False,
    claim_ttl_ms: int = DEFAULT_CLAIM_TTL_MS,
) -> int:
    """Import every issue of a beads JSONL file into ``store``: all or none.

    Returns the number of issues imported. An id that exists already is a
    ConflictError unless ``replace`` is true. An issue in progress becomes a
    claim of its assignee that lapses after ``claim_ttl_ms`` unless renewed.
    """
    try:
        issues = await asyncio.to_thread(read_issues, path)
    except OSError as exc:
        raise JetpackError(f"cannot read {path}: {exc}") from exc
    return await store.import_tasks(
        issues_to_tasks(issues, claim_ttl_ms=claim_ttl_ms), replace=replace
    )


def _write_atomically(target: Path, lines: list[str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def export_jsonl(store: TaskStore, path: str | Path) -> int:
    """Write every task to ``path`` as beads JSONL, sorted by id, atomically (temp + rename)."""
    lines = export_lines(await store.list_tasks())
    try:
        await asyncio.to_thread(_write_atomically, Path(path), lines)
    except OSError as exc:
        raise JetpackError(f"cannot write {path}: {exc}") from exc
    return len(lines)
