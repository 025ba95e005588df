"""The task routes of the Worker as seen from Python: paths and body shapes.

The bodies are the JSON of the ``jetpack.shared`` models (``TaskInput``,
``TaskUpdate``, ``Task``) and the claim arguments; their field names and limits
are those of the zod schemas in ``worker/schemas.ts`` (a test compares the two
through the Worker's OpenAPI document).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel

from jetpack.shared import Task, TaskInput, TaskListOptions, TaskUpdate

__all__ = [
    "BATCH",
    "CLAIM_NEXT",
    "IMPORT",
    "READY",
    "RECOVER",
    "STATS",
    "TASKS",
    "input_body",
    "list_params",
    "maybe_task_of",
    "task_body",
    "task_of",
    "task_path",
    "tasks_of",
    "update_body",
]

TASKS = "/api/tasks"
BATCH = "/api/tasks/batch"
IMPORT = "/api/tasks/import"
READY = "/api/tasks/ready"
STATS = "/api/tasks/stats"
CLAIM_NEXT = "/api/tasks/claim-next"
RECOVER = "/api/tasks/recover"


def task_path(task_id: str, action: str | None = None) -> str:
    """``/api/tasks/{id}`` (or ``…/{action}``); the id is percent-encoded whole."""
    path = f"{TASKS}/{quote(task_id, safe='')}"
    return f"{path}/{action}" if action else path


def input_body(task: TaskInput) -> dict[str, Any]:
    """A TaskInput as the Worker reads it."""
    return task.model_dump(mode="json")


def task_body(task: Task) -> dict[str, Any]:
    """A whole Task as the Worker reads it (import)."""
    return task.model_dump(mode="json")


def update_body(update: TaskUpdate) -> dict[str, Any]:
    """Only the fields set."""
    return update.model_dump(mode="json", include=update.model_fields_set)


def list_params(options: TaskListOptions, *, held_only: bool = False) -> dict[str, str | int]:
    """Query string of ``GET /api/tasks`` (lists comma-separated)."""
    params: dict[str, str | int] = {"offset": options.offset}

    def csv(values: Sequence[str]) -> str:
        return ",".join(values)

    if options.status:
        params["status"] = csv([s.value for s in options.status])
    if options.priority:
        params["priority"] = csv([p.value for p in options.priority])
    if options.assigned_agent is not None:
        params["assigned_agent"] = options.assigned_agent
    if options.branch is not None:
        params["branch"] = options.branch
    if options.tag is not None:
        params["tag"] = options.tag
    if options.limit is not None:
        params["limit"] = options.limit
    if held_only:
        params["held"] = "true"
    return params


class _Answer(Protocol):
    """An HTTP answer (``httpx.Response``): only its body is read here."""

    @property
    def content(self) -> bytes: ...


class _TaskList(BaseModel):
    tasks: list[Task]


class _MaybeTask(BaseModel):
    task: Task | None


# Answers are parsed straight from their bytes by pydantic-core (no json.loads first).


def task_of(answer: _Answer) -> Task:
    """The Task an answer carries."""
    return Task.model_validate_json(answer.content)


def tasks_of(answer: _Answer) -> list[Task]:
    """The tasks of a ``{"tasks": [...]}`` answer."""
    return _TaskList.model_validate_json(answer.content).tasks


def maybe_task_of(answer: _Answer) -> Task | None:
    """The task of a ``{"task": ... | null}`` answer."""
    return _MaybeTask.model_validate_json(answer.content).task
