"""Task tools: ``tasks`` (read), ``task_new`` (create) and ``task`` (claim → finish).

Every write goes through the task store's atomic methods (``claim_task``,
``complete_task``…), never through a file rewrite, so a claim made here and a
claim made by ``jetpack start`` can never both win.
"""

from __future__ import annotations

from typing import Any

from jetpack.cli.mcp._context import ToolContext, clock, slim
from jetpack.cli.mcp._schema import ToolSpec, obj
from jetpack.shared import FailureType, MessageType, Task, TaskPriority, TaskStatus, utcnow
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError

__all__ = ["TASK_TOOLS"]

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_IDS = {"type": "array", "items": _ID, "maxItems": 100}
_PRIORITIES = [p.value for p in TaskPriority]
_STATUSES = [s.value for s in TaskStatus]


def _row(task: Task) -> dict[str, Any]:
    """The few fields an agent needs to pick a task."""
    return slim(
        {
            "id": task.id,
            "title": task.title,
            "status": task.status.value,
            "priority": task.priority.value,
            "deps": task.dependencies,
            "skills": task.required_skills,
            "agent": task.assigned_agent,
        }
    )


def _full(task: Task) -> dict[str, Any]:
    return slim(task.model_dump(mode="json", exclude={"version"}))


async def _require(ctx: ToolContext, task_id: str) -> Task:
    task = await ctx.adapters.tasks.get_task(task_id)
    if task is None:
        raise NotFoundError("task", task_id)
    return task


async def _why_not_claimed(ctx: ToolContext, task_id: str) -> str:
    """Explain a refused claim: who holds it and until when, or why it is not ready."""
    task = await _require(ctx, task_id)
    if task.assigned_agent and task.status in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS):
        return (
            f"task {task_id!r} is held by {task.assigned_agent}"
            f" until {clock(task.claim_expires_at)} ({task.status.value})"
        )
    if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.BLOCKED):
        extra = f": {', '.join(task.blockers)}" if task.blockers else ""
        return f"task {task_id!r} is {task.status.value}{extra}"
    if task.blockers:
        return f"task {task_id!r} is blocked: {', '.join(task.blockers)}"
    if task.not_before and task.not_before > utcnow():
        return f"task {task_id!r} is in retry back-off until {clock(task.not_before)}"
    waiting = []
    for dep in task.dependencies:
        found = await ctx.adapters.tasks.get_task(dep)
        if found is None or found.status is not TaskStatus.COMPLETED:
            waiting.append(f"{dep} ({found.status.value if found else 'missing'})")
    if waiting:
        return f"task {task_id!r} is waiting on {', '.join(waiting)}"
    return f"task {task_id!r} was claimed by another agent first"


# -- tasks (read) -----------------------------------------------------------------------------


async def _tasks(ctx: ToolContext, args: dict[str, Any]) -> Any:
    action = args.get("action", "ready")
    limit = int(args.get("limit", 20))
    store = ctx.adapters.tasks
    if action == "ready":
        return [_row(t) for t in await store.get_ready_tasks(limit)]
    if action == "mine":
        return [_row(t) for t in await store.get_tasks_by_agent(ctx.agent_id)]
    if action == "show":
        if not args.get("id"):
            raise ValidationError("id", "is required for show")
        return _full(await _require(ctx, args["id"]))
    options: dict[str, Any] = {"limit": limit}
    if args.get("status"):
        options["status"] = args["status"]
    return [_row(t) for t in await store.list_tasks(options)]


TASKS = ToolSpec(
    name="tasks",
    description="Read tasks: ready (claimable, best first), mine (held by you), show (one, "
    "full), list (by status).",
    schema=obj(
        action={"type": "string", "enum": ["ready", "mine", "show", "list"]},
        id=_ID,
        status={"type": "string", "enum": _STATUSES},
        limit={"type": "integer", "minimum": 1, "maximum": 200},
    ),
    handler=_tasks,
)


# -- task_new ---------------------------------------------------------------------------------


async def _task_new(ctx: ToolContext, args: dict[str, Any]) -> Any:
    data: dict[str, Any] = {
        "title": args["title"],
        "description": args.get("description"),
        "priority": args.get("priority", "medium"),
        "dependencies": args.get("deps", []),
        "required_skills": args.get("skills", []),
        "tags": args.get("tags", []),
        "metadata": {"created_by": ctx.agent_id},
    }
    if args.get("estimate_min") is not None:
        data["estimated_minutes"] = int(args["estimate_min"])
    task = await ctx.adapters.tasks.create_task(data)
    await ctx.announce(MessageType.TASK_CREATED, {"task_id": task.id, "title": task.title})
    return _row(task)


TASK_NEW = ToolSpec(
    name="task_new",
    description="Create a task; deps are task ids that must complete first.",
    schema=obj(
        ["title"],
        title={"type": "string", "minLength": 1, "maxLength": 500},
        description={"type": "string", "maxLength": 20_000},
        priority={"type": "string", "enum": _PRIORITIES},
        deps=_IDS,
        skills=_IDS,
        tags=_IDS,
        estimate_min={"type": "integer", "minimum": 0, "maximum": 100_000},
    ),
    handler=_task_new,
)


# -- task (lifecycle) -------------------------------------------------------------------------


async def _claim(ctx: ToolContext, args: dict[str, Any]) -> Any:
    store = ctx.adapters.tasks
    task_id = args.get("id")
    if task_id is None:
        task = await store.claim_next(ctx.agent_id, args.get("skills"))
        if task is None:
            return "no ready task fits; try again later or check `tasks ready`"
    else:
        task = await store.claim_task(task_id, ctx.agent_id)
        if task is None:
            current = await _require(ctx, task_id)
            if current.assigned_agent == ctx.agent_id:
                return {**_full(current), "note": "already yours"}
            raise ConflictError(await _why_not_claimed(ctx, task_id))
    await ctx.announce(MessageType.TASK_CLAIMED, {"task_id": task.id, "agent_id": ctx.agent_id})
    return _full(task)


async def _held(ctx: ToolContext, task_id: str) -> Task:
    task = await _require(ctx, task_id)
    if task.assigned_agent != ctx.agent_id:
        holder = task.assigned_agent or "nobody"
        raise ConflictError(f"task {task_id!r} is held by {holder}, not you ({task.status.value})")
    return task


async def _progress(ctx: ToolContext, task_id: str, args: dict[str, Any]) -> Any:
    store = ctx.adapters.tasks
    task = await _held(ctx, task_id)
    if task.status is TaskStatus.CLAIMED:
        await store.start_task(task_id, ctx.agent_id)
    task = await store.renew_claim(task_id, ctx.agent_id)
    payload = slim({"task_id": task_id, "percent": args.get("percent"), "note": args.get("note")})
    await ctx.announce(MessageType.TASK_PROGRESS, payload)
    return {"id": task_id, "status": task.status.value, "claim_until": clock(task.claim_expires_at)}


async def _task(ctx: ToolContext, args: dict[str, Any]) -> Any:
    action = args["action"]
    if action == "claim":
        return await _claim(ctx, args)
    task_id = args.get("id")
    if not task_id:
        raise ValidationError("id", f"is required for {action}")
    store = ctx.adapters.tasks
    if action == "progress":
        return await _progress(ctx, task_id, args)
    if action == "complete":
        result = {"summary": args["note"]} if args.get("note") else None
        task = await store.complete_task(task_id, ctx.agent_id, result=result)
        await ctx.announce(MessageType.TASK_COMPLETED, {"task_id": task_id})
        return {"id": task_id, "status": task.status.value}
    if action == "fail":
        if not args.get("error"):
            raise ValidationError("error", "is required for fail")
        task = await store.fail_task(task_id, ctx.agent_id, args["error"], FailureType.ERROR)
        kind = (
            MessageType.TASK_FAILED
            if task.status is TaskStatus.FAILED
            else MessageType.TASK_RETRY_SCHEDULED  # idle agents wake when its back-off ends
        )
        await ctx.announce(kind, {"task_id": task_id, "error": args["error"]})
        return slim(
            {
                "id": task_id,
                "status": task.status.value,
                "retries": task.retry_count,
                "retry_after": clock(task.not_before),
            }
        )
    # release
    if not await store.release_task(task_id, ctx.agent_id):
        raise ConflictError(f"you do not hold task {task_id!r}")
    await ctx.announce(MessageType.TASK_AVAILABLE, {"task_id": task_id})  # idle agents wake
    return {"id": task_id, "released": True}


TASK = ToolSpec(
    name="task",
    description="Work a task: claim (id, or best ready one for your skills), progress (keeps "
    "the claim alive), complete, fail (error), release.",
    schema=obj(
        ["action"],
        action={"type": "string", "enum": ["claim", "progress", "complete", "fail", "release"]},
        id=_ID,
        skills=_IDS,
        percent={"type": "integer", "minimum": 0, "maximum": 100},
        note={"type": "string", "maxLength": 20_000},
        error={"type": "string", "maxLength": 20_000},
    ),
    handler=_task,
)

TASK_TOOLS = [TASKS, TASK_NEW, TASK]
"""The task tools, in listing order."""
