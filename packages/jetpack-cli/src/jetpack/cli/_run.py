"""The wiring of a run: executor, stores, orchestrator, signals, and what the terminal shows.

``jetpack start`` and ``jetpack demo`` are thin commands over :func:`run_project`:
it opens the project's task and memory stores (each agent opens its own mail
bus), checks the executor once before anything is claimed, builds the
:class:`~jetpack.cli.Orchestrator`, turns signals into stop requests through the
:class:`~jetpack.cli._guard.RunGuard`, and shows the run (the live view on a
terminal, one line per event otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

from jetpack.cli._agent_tokens import agent_tokens
from jetpack.cli._claude import ClaudeCodeExecutor
from jetpack.cli._common import console, open_memory, open_tasks
from jetpack.cli._context import RunSummary, StopReason
from jetpack.cli._events import EVENT_LOG, EventLog, OrchestratorEvent
from jetpack.cli._executors import CommandExecutor, DemoExecutor, Executor, preflight
from jetpack.cli._guard import RunGuard
from jetpack.cli._orchestrator import Orchestrator, new_run_id
from jetpack.cli._settings import Settings
from jetpack.cli._view import event_line, watch
from jetpack.shared import MemoryStore, TaskStatus, TaskStore
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import ValidationError
from jetpack.shared.registry import create_store

__all__ = ["guarded", "make_executor", "run_project"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S", TaskStore, MemoryStore)


def make_executor(name: str, settings: Settings, project_dir: Path | None = None) -> Executor:
    """The executor called ``name``, configured from the settings (ValidationError: no such one).

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
    raise ValidationError("executor", f"unknown executor {name!r} (claude, command or demo)")


def guarded(settings: Settings, body: Callable[[RunGuard], Coroutine[Any, Any, T]]) -> T:
    """Run ``body(guard)`` in a new event loop, inside the signal guard of a run.

    The guard is entered here, on the main thread, before the loop starts (see
    :mod:`jetpack.cli._guard`): signals become stop requests, with deadlines.
    """
    with RunGuard(
        grace_s=settings.orchestrator.shutdown_grace_s,
        kill_grace_s=settings.orchestrator.kill_grace_s,
    ) as guard:
        return asyncio.run(body(guard))


async def run_project(
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
    """Run agents on the project until stopped; return the summary and whether a signal stopped it.

    ``guard`` (see :func:`guarded`) turns SIGINT and SIGTERM into stop requests:
    the first stops claiming and lets running attempts finish within
    ``shutdown_grace_s``, the second kills them; both hand unfinished tasks back.
    """
    run_id = new_run_id()
    events = EventLog(config.path(EVENT_LOG))
    try:
        async with AsyncExitStack() as stores:
            tasks = await stores.enter_async_context(_opened(open_tasks(config)))
            memory = await stores.enter_async_context(_opened(open_memory(config)))
            # Edge stores: each agent's children get a token acting only as that agent.
            executor = await stores.enter_async_context(agent_tokens(config, executor))
            # Check the executor once, before anything is claimed.
            await preflight(
                executor,
                await tasks.list_tasks({"status": [TaskStatus.PENDING, TaskStatus.READY]}),
            )
            orchestrator = Orchestrator(
                tasks=tasks,
                memory=memory,
                mail_factory=lambda agent_id: create_store(config, "mail", agent_id=agent_id),
                executor=executor,
                settings=settings.orchestrator,
                project_dir=config.project_dir,
                agent_count=agents,
                skills=skills if skills is not None else settings.agents.skills,
                until_empty=until_empty,
                run_id=run_id,
                events=events,
            )
            guard.attach(asyncio.get_running_loop(), _on_signal(orchestrator))
            if not live:
                events.listeners.append(
                    lambda e: console.print(event_line(e)) if e.kind != "progress" else None
                )
            run = asyncio.create_task(orchestrator.run())
            try:
                if live:
                    await watch(orchestrator, tasks, run)
                summary = await run
            finally:
                guard.detach()
    finally:
        events.close()
    return summary, guard.signalled


@contextlib.asynccontextmanager
async def _opened(store: S) -> AsyncIterator[S]:
    """Open a store for the run; an error while closing it is logged (the run's outcome stands)."""
    await store.__aenter__()
    try:
        yield store
    finally:
        try:
            await store.__aexit__(None, None, None)
        except Exception:
            logger.exception("closing %s failed", type(store).__name__)


def _on_signal(orchestrator: Orchestrator) -> Callable[[int], None]:
    """The guard's callback: the first signal stops the run, the second kills the attempts."""

    def on_signal(count: int) -> None:
        if count == 1:
            orchestrator.request_stop(StopReason.SIGNAL)
            orchestrator.events.emit(
                OrchestratorEvent("stopping", "jetpack", text=StopReason.SIGNAL.value)
            )
        else:
            orchestrator.force_stop()
            orchestrator.events.emit(
                OrchestratorEvent("stopping", "jetpack", text="killing running attempts")
            )

    return on_signal
