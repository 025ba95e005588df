"""Task models: the rows of the task store and the inputs that change them.

``Task`` has every column of the seed's D1 ``tasks`` table (snake_case), plus
``metadata``, ``not_before`` (retry back-off), ``claim_expires_at`` (claim TTL)
and ``version`` (incremented on every write; used by sync).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from jetpack.shared._base import (
    MAX_LIST_ITEMS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    Identifier,
    JetpackModel,
    JsonObject,
    UtcDatetime,
)

__all__ = [
    "FailureType",
    "Task",
    "TaskInput",
    "TaskListOptions",
    "TaskPriority",
    "TaskStats",
    "TaskStatus",
    "TaskUpdate",
]


class TaskStatus(StrEnum):
    """Where a task is in its life.

    ``pending``/``ready`` wait for an agent: ``ready`` when nothing but a retry
    back-off keeps the task from being claimed, ``pending`` while a dependency is
    unfinished or a blocker is set. ``claimed``/``in_progress`` are held by one
    agent (with a claim expiry), ``blocked`` waits on a failed or blocked
    dependency (a blocker names it) or was blocked by hand, ``completed``/``failed``
    are final.
    """

    PENDING = "pending"
    READY = "ready"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"


OPEN_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.READY})
"""Statuses from which a task can be claimed (if it is ready)."""
HELD_STATUSES = frozenset({TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS})
"""Statuses in which one agent holds the task."""
FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})
"""Statuses a task never leaves through release or recovery."""


class TaskPriority(StrEnum):
    """Task priority; ``claim_next`` takes the highest first, then the oldest."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for critical up to 3 for low: sort ascending to get the most urgent first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {
    TaskPriority.CRITICAL: 0,
    TaskPriority.HIGH: 1,
    TaskPriority.MEDIUM: 2,
    TaskPriority.LOW: 3,
}


class FailureType(StrEnum):
    """Why an attempt failed."""

    TIMEOUT = "timeout"
    ERROR = "error"
    STALLED = "stalled"
    BLOCKED = "blocked"


Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Labels = Annotated[list[Label], Field(max_length=MAX_LIST_ITEMS)]
IdList = Annotated[list[Identifier], Field(max_length=MAX_LIST_ITEMS)]
Minutes = Annotated[int, Field(ge=0, le=10_000_000)]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class Task(JetpackModel):
    """A unit of work, as stored."""

    id: Identifier = Field(description="Task id, e.g. 'bd-3k9x0q'.")
    title: Title = Field(description="Short summary of the work.")
    description: Text | None = Field(default=None, description="Full description.")
    status: TaskStatus = Field(default=TaskStatus.PENDING, description="Lifecycle status.")
    priority: TaskPriority = Field(default=TaskPriority.MEDIUM, description="Urgency.")
    dependencies: IdList = Field(default_factory=list, description="Ids that must complete first.")
    blockers: Labels = Field(default_factory=list, description="Free-text reasons it cannot run.")
    required_skills: Labels = Field(default_factory=list, description="Skills an agent needs.")
    estimated_minutes: Minutes | None = Field(default=None, description="Estimate.")
    actual_minutes: Minutes | None = Field(default=None, description="Measured duration.")
    tags: Labels = Field(default_factory=list, description="Free labels.")
    retry_count: int = Field(default=0, ge=0, description="Failed attempts so far.")
    max_retries: int = Field(default=2, ge=0, le=100, description="Retries before failing.")
    branch: str | None = Field(default=None, max_length=255, description="Working branch.")
    origin_branch: str | None = Field(default=None, max_length=255, description="Base branch.")
    target_branches: Labels = Field(default_factory=list, description="Branches to merge into.")
    assigned_agent: Identifier | None = Field(default=None, description="Agent holding it.")
    last_error: Text | None = Field(default=None, description="Error of the last attempt.")
    failure_type: FailureType | None = Field(default=None, description="Kind of last failure.")
    last_attempt_at: UtcDatetime | None = Field(default=None, description="Last claim time.")
    created_at: UtcDatetime = Field(description="Creation time (UTC).")
    updated_at: UtcDatetime = Field(description="Last change (UTC).")
    completed_at: UtcDatetime | None = Field(default=None, description="Completion time.")
    metadata: JsonObject = Field(default_factory=dict, description="Free JSON object.")
    not_before: UtcDatetime | None = Field(
        default=None, description="Retry back-off: not ready before this time."
    )
    claim_expires_at: UtcDatetime | None = Field(
        default=None, description="When the current claim lapses unless renewed."
    )
    version: int = Field(default=1, ge=1, description="Incremented on every write.")


class TaskInput(JetpackModel):
    """What a caller gives to create a task. ``id`` is generated when omitted."""

    id: Identifier | None = Field(default=None, description="Explicit id; must be new.")
    title: Title = Field(description="Short summary of the work.")
    description: Text | None = Field(default=None, description="Full description.")
    status: TaskStatus = Field(default=TaskStatus.PENDING, description="Initial status.")
    priority: TaskPriority = Field(default=TaskPriority.MEDIUM, description="Urgency.")
    dependencies: IdList = Field(default_factory=list, description="Ids that must complete first.")
    blockers: Labels = Field(default_factory=list, description="Reasons it cannot run yet.")
    required_skills: Labels = Field(default_factory=list, description="Skills an agent needs.")
    estimated_minutes: Minutes | None = Field(default=None, description="Estimate.")
    tags: Labels = Field(default_factory=list, description="Free labels.")
    max_retries: int = Field(default=2, ge=0, le=100, description="Retries before failing.")
    branch: str | None = Field(default=None, max_length=255, description="Working branch.")
    origin_branch: str | None = Field(default=None, max_length=255, description="Base branch.")
    target_branches: Labels = Field(default_factory=list, description="Branches to merge into.")
    metadata: JsonObject = Field(default_factory=dict, description="Free JSON object.")

    @field_validator("dependencies", "required_skills", "tags")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("status")
    @classmethod
    def _creatable(cls, value: TaskStatus) -> TaskStatus:
        if value in HELD_STATUSES:
            raise ValueError("a new task cannot start claimed; claim it instead")
        return value


class TaskUpdate(JetpackModel):
    """A partial change. Only the fields set are applied (``model_fields_set``).

    Claim fields (``assigned_agent``, ``claim_expires_at``) change only through
    ``claim_*``/``release_task``/``complete_task``/``fail_task``.
    """

    model_config = ConfigDict(extra="forbid", validate_default=False)

    title: Title | None = None
    description: Text | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    dependencies: IdList | None = None
    blockers: Labels | None = None
    required_skills: Labels | None = None
    estimated_minutes: Minutes | None = None
    actual_minutes: Minutes | None = None
    tags: Labels | None = None
    max_retries: int | None = Field(default=None, ge=0, le=100)
    branch: str | None = Field(default=None, max_length=255)
    origin_branch: str | None = Field(default=None, max_length=255)
    target_branches: Labels | None = None
    last_error: Text | None = None
    failure_type: FailureType | None = None
    metadata: JsonObject | None = None

    @field_validator("title", "status", "priority", "dependencies", "blockers")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class TaskListOptions(JetpackModel):
    """Filters for ``list_tasks``; results come in creation order, then id."""

    status: list[TaskStatus] | None = Field(default=None, description="Any of these statuses.")
    priority: list[TaskPriority] | None = Field(default=None, description="Any of these.")
    assigned_agent: Identifier | None = Field(default=None, description="Held by this agent.")
    branch: str | None = Field(default=None, max_length=255, description="On this branch.")
    tag: Label | None = Field(default=None, description="Carrying this tag.")
    limit: int | None = Field(default=None, ge=1, le=100_000, description="At most this many.")
    offset: int = Field(default=0, ge=0, description="Skip this many first.")

    @field_validator("status", "priority", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return [value]
        return value


class TaskStats(JetpackModel):
    """Counts over the whole store."""

    total: int = Field(description="All tasks.")
    by_status: dict[TaskStatus, int] = Field(description="Count per status (all statuses).")
    by_priority: dict[TaskPriority, int] = Field(description="Count per priority.")
    ready: int = Field(description="Tasks ready to claim now.")
    avg_completion_minutes: float | None = Field(
        default=None, description="Mean actual_minutes over completed tasks."
    )
