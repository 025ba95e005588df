"""``jetpack task ...``: add, list, show, ready, update, done, delete, import, export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jetpack.cli._app import app
from jetpack.cli._common import (
    console,
    fail,
    open_mail,
    open_tasks,
    project_config,
    run_async,
)
from jetpack.shared import Task, TaskPriority, TaskStatus, beads_jsonl
from jetpack.shared.errors import NotFoundError

__all__ = ["task_app", "task_table"]

task_app = typer.Typer(help="Create, inspect and change tasks.", no_args_is_help=True)
app.add_typer(task_app, name="task")

_STYLE = {
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.BLOCKED: "magenta",
    TaskStatus.CLAIMED: "yellow",
    TaskStatus.IN_PROGRESS: "yellow",
    TaskStatus.READY: "cyan",
}


def task_table(tasks: list[Task], title: str | None = None) -> Table:
    """A compact table of tasks."""
    table = Table("id", "status", "priority", "title", "deps", "agent", "tries", title=title)
    for t in tasks:
        style = _STYLE.get(t.status, "")
        table.add_row(
            t.id,
            f"[{style}]{t.status}[/]" if style else str(t.status),
            str(t.priority),
            t.title,
            ",".join(t.dependencies),
            t.assigned_agent or "",
            str(t.retry_count) if t.retry_count else "",
        )
    return table


def _dump(task: Task) -> str:
    return task.model_dump_json(indent=2, exclude_none=True)


@task_app.command("add")
@run_async
async def add(
    title: Annotated[str, typer.Argument(help="Short summary.")],
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    priority: Annotated[TaskPriority, typer.Option("--priority", "-p")] = TaskPriority.MEDIUM,
    depends_on: Annotated[list[str] | None, typer.Option("--dep", help="Dependency id.")] = None,
    skill: Annotated[list[str] | None, typer.Option(help="Required skill.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag.")] = None,
    file: Annotated[list[str] | None, typer.Option(help="File or glob to lease.")] = None,
    command: Annotated[str | None, typer.Option(help="Command (command executor).")] = None,
    verify: Annotated[str | None, typer.Option(help="Verify command for this task.")] = None,
    estimate: Annotated[int | None, typer.Option(help="Estimated minutes.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Attempt timeout, seconds.")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries after the first attempt.")] = 2,
    task_id: Annotated[str | None, typer.Option("--id", help="Explicit id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the task as JSON.")] = False,
) -> None:
    """Add a task."""
    metadata: dict[str, Any] = {}
    if file:
        metadata["files"] = file
    if command:
        metadata["command"] = command
    if verify:
        metadata["verify"] = verify
    if timeout:
        metadata["timeout_s"] = timeout
    data: dict[str, Any] = {
        "id": task_id,
        "title": title,
        "description": description,
        "priority": priority,
        "dependencies": depends_on or [],
        "required_skills": skill or [],
        "tags": tag or [],
        "estimated_minutes": estimate,
        "max_retries": max_retries,
        "metadata": metadata,
    }
    config = project_config()
    async with open_tasks(config) as store, open_mail(config) as bus:
        task = await store.create_task(data)
        await bus.publish("task.created", {"task_id": task.id, "title": task.title})
    typer.echo(_dump(task) if as_json else task.id)


@task_app.command("list")
@run_async
async def list_(
    status: Annotated[list[TaskStatus] | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List tasks (creation order)."""
    options: dict[str, Any] = {"status": status or None, "limit": limit}
    async with open_tasks(project_config()) as store:
        tasks = await store.list_tasks(options)
    if as_json:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in tasks]))
    else:
        console.print(task_table(tasks))


@task_app.command("show")
@run_async
async def show(task_id: str) -> None:
    """Show one task as JSON."""
    async with open_tasks(project_config()) as store:
        task = await store.get_task(task_id)
    if task is None:
        raise fail(f"task {task_id!r} not found")
    typer.echo(_dump(task))


@task_app.command("ready")
@run_async
async def ready(limit: Annotated[int | None, typer.Option()] = None) -> None:
    """Tasks an agent could claim now, in claim order."""
    async with open_tasks(project_config()) as store:
        tasks = await store.get_ready_tasks(limit)
    console.print(task_table(tasks, title=f"{len(tasks)} ready"))


@task_app.command("update")
@run_async
async def update(
    task_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    priority: Annotated[TaskPriority | None, typer.Option("--priority", "-p")] = None,
    status: Annotated[TaskStatus | None, typer.Option("--status", "-s")] = None,
    depends_on: Annotated[list[str] | None, typer.Option("--dep")] = None,
    max_retries: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Change fields of a task."""
    change = {
        k: v
        for k, v in {
            "title": title,
            "description": description,
            "priority": priority,
            "status": status,
            "dependencies": depends_on,
            "max_retries": max_retries,
        }.items()
        if v is not None
    }
    if not change:
        raise fail("nothing to change (give at least one option)")
    config = project_config()
    async with open_tasks(config) as store, open_mail(config) as bus:
        task = await store.update_task(task_id, change)
        await bus.publish("task.updated", {"task_id": task.id})
    console.print(f"{task.id}: {task.status}")


@task_app.command("done")
@run_async
async def done(task_id: str) -> None:
    """Mark a task completed by hand (claims it for `cli` when it is ready)."""
    async with open_tasks(project_config()) as store:
        claimed = await store.claim_task(task_id, "cli")
        if claimed is not None:
            task = await store.complete_task(task_id, "cli", result={"summary": "by hand"})
        else:
            task = await store.update_task(task_id, {"status": TaskStatus.COMPLETED})
    console.print(f"{task.id}: {task.status}")


@task_app.command("delete")
@run_async
async def delete(task_id: str) -> None:
    """Delete a task nobody depends on."""
    async with open_tasks(project_config()) as store:
        if not await store.delete_task(task_id):
            raise NotFoundError("task", task_id)
    console.print(f"deleted {task_id}")


@task_app.command("import")
@run_async
async def import_(
    path: Annotated[Path, typer.Argument(help="Beads JSONL file ('-' for stdin).")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite tasks whose id exists.")
    ] = False,
) -> None:
    """Import beads-style JSONL (all or nothing; existing ids are skipped unless --replace)."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    tasks = beads_jsonl.issues_to_tasks(beads_jsonl.parse_issues(text.splitlines()))
    async with open_tasks(project_config()) as store:
        existing = {t.id for t in await store.list_tasks()}
        new = tasks if replace else [t for t in tasks if t.id not in existing]
        if new:
            await store.import_tasks(new, replace=replace)
    skipped = len(tasks) - len(new)
    console.print(f"imported {len(new)} tasks" + (f", skipped {skipped}" if skipped else ""))


@task_app.command("export")
@run_async
async def export(
    path: Annotated[Path | None, typer.Argument(help="Output file (default: stdout).")] = None,
) -> None:
    """Export every task as beads-style JSONL."""
    async with open_tasks(project_config()) as store:
        lines = beads_jsonl.export_lines(await store.list_tasks())
    text = "".join(lines)
    if path is None:
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")
        console.print(f"exported {len(lines)} tasks to {path}")
