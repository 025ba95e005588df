"""``jetpack start``, ``jetpack status`` and ``jetpack demo`` (the run itself is in ``_run``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jetpack.cli._app import app
from jetpack.cli._common import (
    command_errors,
    console,
    fail,
    open_mail,
    open_tasks,
    project_config,
    run_async,
)
from jetpack.cli._demo import run_demo
from jetpack.cli._events import EVENT_LOG, read_events
from jetpack.cli._run import guarded, make_executor, run_project
from jetpack.cli._settings import Settings, load_settings
from jetpack.cli._view import counts_line, event_line, leases_table, presence_table
from jetpack.shared import AgentStatus, TaskStatus
from jetpack.shared.errors import ValidationError

__all__ = ["demo", "start", "status"]


@app.command()
def start(
    agents: Annotated[
        int | None, typer.Option("--agents", "-n", min=1, max=64, help="Agent loops.")
    ] = None,
    executor: Annotated[str | None, typer.Option(help="claude, command or demo.")] = None,
    command: Annotated[
        str | None,
        typer.Option(help="Command for tasks without their own (implies --executor command)."),
    ] = None,
    worktrees: Annotated[bool | None, typer.Option(help="One git worktree per task.")] = None,
    until_empty: Annotated[bool, typer.Option(help="Stop when no task can run.")] = False,
    skill: Annotated[list[str] | None, typer.Option(help="Skills of the agents.")] = None,
    live: Annotated[bool | None, typer.Option(help="Live view (default: on a terminal).")] = None,
) -> None:
    """Run agents on the project's tasks until Ctrl+C (or --until-empty)."""
    with command_errors():
        config = project_config(check_stores=True)
        settings = load_settings(config)
        if worktrees is not None:
            settings.orchestrator.worktrees = worktrees
        if command is not None:
            settings.orchestrator.command = command
        name = executor or ("command" if command is not None else settings.agents.executor)
        try:
            runner = make_executor(name, settings, config.project_dir.resolve())
        except ValidationError as exc:
            raise typer.BadParameter(exc.reason) from exc
        summary, signalled = guarded(
            settings,
            lambda guard: run_project(
                config,
                settings,
                runner,
                guard=guard,
                agents=agents or settings.agents.count,
                until_empty=until_empty,
                live=console.is_terminal if live is None else live,
                skills=skill,
            ),
        )
    console.print(
        f"run {summary.run_id}: {len(summary.completed)} completed, {len(summary.failed)} failed, "
        f"{len(summary.retried)} retries scheduled, {len(summary.interrupted)} handed back, "
        f"{summary.duration_s:.1f}s"
    )
    if summary.fatal:
        raise fail(f"the run stopped: {summary.fatal}", code=2)
    if signalled:
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
@run_async
async def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    events: Annotated[int, typer.Option(min=0, help="Recent events to show.")] = 10,
) -> None:
    """Live agents of every running `jetpack start`, tasks by status, leases, recent events."""
    config = project_config()
    async with open_tasks(config) as store, open_mail(config, agent_id="cli-status") as bus:
        agents = await bus.list_agents()
        stats = await store.get_stats()
        held = await store.list_tasks({"status": [TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS]})
        leases = await bus.list_leases()
    # The task store is the authority on who holds what; heartbeats may be a beat behind,
    # so an agent holding a task is shown busy whatever its last heartbeat said.
    holding = {t.assigned_agent: t for t in held if t.assigned_agent}
    agents = [
        a.model_copy(
            update={
                "status": AgentStatus.BUSY,
                "info": {
                    **a.info,
                    "task_id": holding[a.agent_id].id,
                    "task_title": holding[a.agent_id].title,
                },
            }
        )
        if a.agent_id in holding and a.online
        else a
        for a in agents
        if a.agent_id != "cli-status"
    ]
    recent = read_events(config.path(EVENT_LOG), events)
    if as_json:
        data = {
            "agents": [a.model_dump(mode="json") for a in agents],
            "tasks": {str(k): v for k, v in stats.by_status.items()},
            "ready": stats.ready,
            "total": stats.total,
            "running": [{"id": t.id, "title": t.title, "agent": t.assigned_agent} for t in held],
            "leases": [le.model_dump(mode="json") for le in leases],
            "events": recent,
        }
        typer.echo(json.dumps(data))
        return
    if agents:
        console.print(presence_table(agents))
    else:
        console.print("no agents running (no heartbeat within the presence window)")
    console.print(counts_line(stats))
    for t in held:
        console.print(f"  running {t.id} {t.title} — {t.assigned_agent}")
    if leases:
        console.print(leases_table(leases))
    for event in recent:
        console.print(event_line(event))


@app.command()
def demo(
    agents: Annotated[int, typer.Option("--agents", "-n", min=1, max=64)] = 3,
    directory: Annotated[Path | None, typer.Option("--dir", help="Keep the project here.")] = None,
    live: Annotated[bool | None, typer.Option(help="Live view (default: on a terminal).")] = None,
) -> None:
    """Run 3 agents on a small dependency graph, offline, with the deterministic demo executor."""
    show_live = console.is_terminal if live is None else live
    with command_errors():
        code = guarded(
            Settings(),
            lambda guard: run_demo(guard=guard, agents=agents, directory=directory, live=show_live),
        )
    raise typer.Exit(code)
