"""``jetpack task ...``: create, inspect, change, cancel, import and export tasks.

Commands: add, list, show, ready, update, done, retry, cancel, delete, import, export.
Every command that takes a task id also takes a unique prefix of one, as git does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jetpack.cli._app import app
from jetpack.cli._cancel import cancel_task, one_off_agent_id
from jetpack.cli._common import (
    console,
    fail,
    id_column,
    open_mail,
    open_tasks,
    project_config,
    resolve_task_id,
    run_async,
)
from jetpack.cli._logs import read_logs
from jetpack.shared import MessageType, Task, TaskPriority, TaskStatus, TaskStore, beads_jsonl
from jetpack.shared.errors import NotFoundError, ValidationError

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
    """A compact table of tasks; ids and agent ids are shown whole."""
    table = Table(title=title)
    id_column(table, "id", (t.id for t in tasks))
    table.add_column("status", no_wrap=True)
    table.add_column("priority", no_wrap=True)
    table.add_column("title", ratio=1)
    table.add_column("deps", overflow="fold")
    id_column(table, "agent", (t.assigned_agent or "" for t in tasks))
    table.add_column("tries", no_wrap=True)
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


async def _ids(store: TaskStore, given: list[str] | None) -> list[str]:
    return [await resolve_task_id(store, i) for i in given or []]


def _read_description(path: Path) -> str:
    """The text of ``path`` (``-``: standard input)."""
    return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")


@task_app.command("add")
@run_async
async def add(
    title: Annotated[str, typer.Argument(help="Short summary.")],
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    description_file: Annotated[
        Path | None,
        typer.Option(
            "--description-file", "-F", help="Read the description from a file ('-': stdin)."
        ),
    ] = None,
    priority: Annotated[TaskPriority, typer.Option("--priority", "-p")] = TaskPriority.MEDIUM,
    depends_on: Annotated[list[str] | None, typer.Option("--dep", help="Dependency id.")] = None,
    skill: Annotated[list[str] | None, typer.Option(help="Required skill.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag.")] = None,
    file: Annotated[list[str] | None, typer.Option(help="File or glob to lease.")] = None,
    command: Annotated[str | None, typer.Option(help="Command (command executor).")] = None,
    verify: Annotated[str | None, typer.Option(help="Verify command for this task.")] = None,
    estimate: Annotated[int | None, typer.Option(min=0, help="Estimated minutes.")] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.001, help="Attempt timeout, seconds.")
    ] = None,
    max_retries: Annotated[
        int, typer.Option(min=0, max=100, help="Retries after the first attempt.")
    ] = 2,
    task_id: Annotated[str | None, typer.Option("--id", help="Explicit id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the task as JSON.")] = False,
) -> None:
    """Add a task (a long description: --description-file FILE, or - for stdin)."""
    if description is not None and description_file is not None:
        raise fail("give --description or --description-file, not both")
    if description_file is not None:
        description = _read_description(description_file)
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
        data["dependencies"] = await _ids(store, depends_on)
        task = await store.create_task(data)
        await bus.publish("task.created", {"task_id": task.id, "title": task.title})
    typer.echo(_dump(task) if as_json else task.id)


@task_app.command("list")
@run_async
async def list_(
    status: Annotated[list[TaskStatus] | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
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
async def show(task_id: Annotated[str, typer.Argument(help="Task id or unique prefix.")]) -> None:
    """Show one task as JSON."""
    async with open_tasks(project_config()) as store:
        task = await store.get_task(await resolve_task_id(store, task_id))
    if task is None:
        raise fail(f"task {task_id!r} not found")
    typer.echo(_dump(task))


@task_app.command("ready")
@run_async
async def ready(
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Tasks an agent could claim now, in claim order."""
    async with open_tasks(project_config()) as store:
        tasks = await store.get_ready_tasks(limit)
    if as_json:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in tasks]))
    else:
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
    max_retries: Annotated[int | None, typer.Option(min=0, max=100)] = None,
) -> None:
    """Change fields of a task (id or unique prefix)."""
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
        if depends_on is not None:
            change["dependencies"] = await _ids(store, depends_on)
        task = await store.update_task(await resolve_task_id(store, task_id), change)
        await bus.publish("task.updated", {"task_id": task.id})
    console.print(f"{task.id}: {task.status}")


@task_app.command("done")
@run_async
async def done(task_id: str) -> None:
    """Mark a task completed by hand (claims it for `cli` when it is ready)."""
    config = project_config()
    async with open_tasks(config) as store, open_mail(config) as bus:
        task_id = await resolve_task_id(store, task_id)
        claimed = await store.claim_task(task_id, "cli")
        if claimed is not None:
            task = await store.complete_task(task_id, "cli", result={"summary": "by hand"})
        else:
            task = await store.update_task(task_id, {"status": TaskStatus.COMPLETED})
        # Its dependants may be ready now: idle agents of running swarms wake up.
        await bus.publish(MessageType.TASK_COMPLETED, {"task_id": task.id})
    console.print(f"{task.id}: {task.status}")


@task_app.command("retry")
@run_async
async def retry(
    task_id: Annotated[str, typer.Argument(help="Task id or unique prefix.")],
) -> None:
    """Run a failed task again: one more attempt (its error is cleared, its retry count kept)."""
    config = project_config()
    async with open_tasks(config) as store, open_mail(config) as bus:
        task = await store.get_task(await resolve_task_id(store, task_id))
        if task is None:
            raise NotFoundError("task", task_id)
        if task.status is not TaskStatus.FAILED:
            raise ValidationError(
                "status", f"{task.id} is {task.status}, not failed: nothing to retry"
            )
        task = await store.update_task(
            task.id, {"status": TaskStatus.PENDING, "last_error": None, "failure_type": None}
        )
        await bus.publish("task.updated", {"task_id": task.id})
    console.print(f"{task.id}: {task.status}")


@task_app.command("cancel")
@run_async
async def cancel(
    task_id: Annotated[str, typer.Argument(help="Task id or unique prefix.")],
    fail_it: Annotated[
        bool,
        typer.Option(
            "--fail", help="Fail the task (reason: cancelled) instead of handing it back."
        ),
    ] = False,
    wait: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the agent's answer.")
    ] = 30.0,
) -> None:
    """Stop the agent running a task, on whatever machine; hand the task back (or --fail it).

    The agent (named by the task's claim) gets a direct message, kills the
    attempt and answers. A task nobody runs is left as it is (--fail fails it);
    a holder that is gone has its claim ended from here.
    """
    config = project_config()
    async with open_tasks(config) as store, open_mail(config, agent_id=one_off_agent_id()) as bus:
        outcome = await cancel_task(
            store, bus, await resolve_task_id(store, task_id), fail=fail_it, wait_s=wait
        )
    if not outcome.done:
        raise fail(outcome.text)
    console.print(outcome.text)


@app.command("logs")
@run_async
async def logs(
    task_id: Annotated[str, typer.Argument(help="Task id or unique prefix.")],
    last: Annotated[int | None, typer.Option(min=1, help="Only the last N attempts.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What each attempt at a task printed, oldest first (the last 10 attempts are kept)."""
    config = project_config()
    async with open_tasks(config) as store:
        task_id = await resolve_task_id(store, task_id)
    kept = read_logs(config.project_dir, task_id)
    if last is not None:
        kept = kept[-last:]
    if as_json:
        typer.echo(json.dumps([{"file": str(k.path), "text": k.text} for k in kept]))
        return
    if not kept:
        console.print(f"no attempt of {task_id} has been logged yet")
    for number, log in enumerate(kept, 1):
        console.rule(f"attempt {number} of {len(kept)} — {log.path.name}")
        console.print(log.text, end="", markup=False, highlight=False)


@task_app.command("delete")
@run_async
async def delete(task_id: str) -> None:
    """Delete a task nobody depends on."""
    async with open_tasks(project_config()) as store:
        task_id = await resolve_task_id(store, task_id)
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
    config = project_config()
    async with open_tasks(config) as store:
        existing = {t.id for t in await store.list_tasks()}
        new = tasks if replace else [t for t in tasks if t.id not in existing]
        if new:
            await store.import_tasks(new, replace=replace)
            async with open_mail(config) as bus:  # idle agents of running swarms wake up
                await bus.publish(MessageType.TASK_CREATED, {"count": len(new)})
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
