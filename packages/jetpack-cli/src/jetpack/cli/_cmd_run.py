"""``jetpack start``, ``jetpack status`` and ``jetpack demo``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.live import Live

from jetpack.cli._app import app
from jetpack.cli._claude import ClaudeCodeExecutor
from jetpack.cli._common import (
    console,
    fail,
    open_adapters,
    open_mail,
    open_tasks,
    project_config,
    run_async,
)
from jetpack.cli._events import EVENT_LOG, EventLog, OrchestratorEvent, read_events
from jetpack.cli._executors import CommandExecutor, DemoExecutor, Executor, preflight
from jetpack.cli._guard import RunGuard
from jetpack.cli._orchestrator import Orchestrator, RunSummary, new_run_id
from jetpack.cli._settings import Settings, load_settings
from jetpack.cli._view import event_line, leases_table, live_view, presence_table
from jetpack.shared import AgentStatus, TaskStats, TaskStatus
from jetpack.shared.config import JetpackConfig
from jetpack.shared.registry import create_store

__all__ = ["make_executor", "run_guard", "run_orchestrator"]

ExecutorName = Literal["claude", "command", "demo"]


def make_executor(name: str, settings: Settings, project_dir: Path | None = None) -> Executor:
    """The executor called ``name``, configured from the settings.

    With ``project_dir``, Claude agents get the project's ``jetpack mcp`` tools.
    """
    grace = settings.orchestrator.kill_grace_s
    if name == "claude":
        return ClaudeCodeExecutor(
            settings.claude.options(), kill_grace_s=grace, project_dir=project_dir
        )
    if name == "command":
        return CommandExecutor(settings.orchestrator.command, kill_grace_s=grace)
    if name == "demo":
        return DemoExecutor()
    raise typer.BadParameter(f"unknown executor {name!r} (claude, command or demo)")


def run_guard(settings: Settings) -> RunGuard:
    """The signal handling and exit deadlines of a run with these settings."""
    return RunGuard(
        grace_s=settings.orchestrator.shutdown_grace_s,
        kill_grace_s=settings.orchestrator.kill_grace_s,
    )


async def run_orchestrator(
    config: JetpackConfig,
    settings: Settings,
    executor: Executor,
    *,
    guard: RunGuard,
    agents: int,
    until_empty: bool,
    live: bool,
    skills: list[str] | None = None,
) -> tuple[RunSummary, bool]:
    """Run agents until stopped; returns the summary and whether a signal stopped it.

    ``guard`` (entered by the caller, on the main thread) turns SIGINT and SIGTERM
    into stop requests: the first stops claiming and lets running attempts
    finish within ``shutdown_grace_s``, the second kills them; both hand
    unfinished tasks back.
    """
    run_id = new_run_id()
    root = config.project_dir
    events = EventLog(config.path(EVENT_LOG))
    try:
        async with open_adapters(config, agent_id=f"jetpack-{run_id}") as stores:
            # Check the executor once, before anything is claimed.
            await preflight(
                executor,
                await stores.tasks.list_tasks({"status": [TaskStatus.PENDING, TaskStatus.READY]}),
            )
            orchestrator = Orchestrator(
                tasks=stores.tasks,
                memory=stores.memory,
                mail_factory=lambda agent_id: create_store(config, "mail", agent_id=agent_id),
                executor=executor,
                settings=settings.orchestrator,
                project_dir=root,
                agent_count=agents,
                skills=skills if skills is not None else settings.agents.skills,
                until_empty=until_empty,
                run_id=run_id,
                events=events,
            )

            def on_signal(count: int) -> None:
                if count == 1:
                    orchestrator.request_stop("signal received")
                    events.emit(OrchestratorEvent("stopping", "jetpack", text="signal received"))
                else:
                    orchestrator.force_stop()
                    events.emit(
                        OrchestratorEvent("stopping", "jetpack", text="killing running attempts")
                    )

            guard.attach(asyncio.get_running_loop(), on_signal)
            if not live:
                events.listeners.append(
                    lambda e: console.print(event_line(e)) if e.kind != "progress" else None
                )
            run = asyncio.create_task(orchestrator.run())
            try:
                if live:
                    await _live(orchestrator, stores.tasks, run)
                summary = await run
            finally:
                guard.detach()
    finally:
        events.close()
    return summary, guard.signalled


async def _live(orchestrator: Orchestrator, tasks: Any, run: asyncio.Task[RunSummary]) -> None:
    stats: TaskStats | None = None
    last = 0.0
    loop = asyncio.get_running_loop()
    with Live(
        live_view(orchestrator, stats), console=console, refresh_per_second=4, transient=False
    ) as view:
        while not run.done():
            if loop.time() - last > 1.0:
                with contextlib.suppress(Exception):
                    stats = await tasks.get_stats()
                last = loop.time()
            view.update(live_view(orchestrator, stats))
            await asyncio.wait({run}, timeout=0.25)
        with contextlib.suppress(Exception):
            stats = await tasks.get_stats()
        view.update(live_view(orchestrator, stats))


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
    config = project_config(check_stores=True)
    settings = load_settings(config)
    if worktrees is not None:
        settings.orchestrator.worktrees = worktrees
    if command is not None:
        settings.orchestrator.command = command
    name = executor or ("command" if command is not None else settings.agents.executor)
    count = agents or settings.agents.count
    show_live = console.is_terminal if live is None else live
    with run_guard(settings) as guard:
        summary, signalled = asyncio.run(
            run_orchestrator(
                config,
                settings,
                make_executor(name, settings, config.project_dir.resolve()),
                guard=guard,
                agents=count,
                until_empty=until_empty,
                live=show_live,
                skills=skill,
            )
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
    from jetpack.cli._view import counts_line

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
    from jetpack.cli._demo import run_demo

    show_live = console.is_terminal if live is None else live
    with run_guard(Settings()) as guard:
        code = asyncio.run(
            run_demo(guard=guard, agents=agents, directory=directory, live=show_live)
        )
    raise typer.Exit(code)
