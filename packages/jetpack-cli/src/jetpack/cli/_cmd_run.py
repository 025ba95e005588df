"""``jetpack start``, ``jetpack status`` and ``jetpack demo`` (the run itself is in ``_run``)."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from collections import deque
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

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
from jetpack.cli._status import StatusWatch, read_status
from jetpack.cli._view import status_view
from jetpack.shared import MailBus, TaskStore
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
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep updating from the mail bus (Ctrl+C ends).")
    ] = False,
) -> None:
    """Every live agent of the project on every machine, tasks by status, leases, recent events."""
    config = project_config()
    viewer = f"cli-status-{secrets.token_hex(3)}"
    async with open_tasks(config) as store, open_mail(config, agent_id=viewer) as bus:
        if watch:
            await _watch_status(store, bus, viewer)
            return
        shown = await read_status(store, bus)
    shown.events = deque(read_events(config.path(EVENT_LOG), events), maxlen=max(events, 1))
    if as_json:
        typer.echo(json.dumps(shown.as_json(viewer)))
        return
    console.print(status_view(shown, viewer, events))


async def _watch_status(store: TaskStore, bus: MailBus, viewer: str) -> None:
    """``status --watch``: redraw whenever the bus (or the slow re-read) changes the status."""
    watcher = StatusWatch(store, bus)
    watcher.attach()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    runner = asyncio.create_task(watcher.run())
    ended = asyncio.create_task(done.wait())
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as view:
            while not done.is_set():
                changed = asyncio.create_task(watcher.changed.wait())
                await asyncio.wait({changed, ended}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                watcher.changed.clear()
                if watcher.status is not None:
                    view.update(status_view(watcher.status, viewer, 10))
                await asyncio.sleep(0.25)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for task in (runner, ended):
            task.cancel()
        await asyncio.gather(runner, ended, return_exceptions=True)


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
