"""Rich renderings: the live view of ``jetpack start``, the status screen, the run summary."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from jetpack.cli._common import console, id_column
from jetpack.cli._context import RunSummary, StopReason
from jetpack.cli._events import OrchestratorEvent
from jetpack.cli._orchestrator import Orchestrator
from jetpack.shared import AgentPresence, Lease, Task, TaskStats, TaskStatus, TaskStore, utcnow

__all__ = [
    "agents_table",
    "counts_line",
    "event_line",
    "leases_table",
    "live_view",
    "presence_table",
    "summary_table",
    "watch",
]

_KIND_STYLE = {
    "completed": "green",
    "failed": "bold red",
    "retry": "yellow",
    "interrupted": "magenta",
    "claimed": "cyan",
    "claim_lost": "red",
    "error": "red",
    "fatal": "bold red",
}


def event_line(event: OrchestratorEvent | Mapping[str, Any]) -> Text:
    """One event as a coloured line."""
    if isinstance(event, OrchestratorEvent):
        when, kind, agent = event.time, event.kind, event.agent_id
        task, text = event.task_id, event.text
    else:
        when = datetime.fromisoformat(str(event.get("time")))
        kind, agent = str(event.get("kind")), str(event.get("agent_id"))
        task, text = event.get("task_id"), str(event.get("text", ""))
    line = Text(f"{when:%H:%M:%S} ")
    line.append(f"{kind:<11}", style=_KIND_STYLE.get(kind, "dim"))
    line.append(f" {agent}")
    if task:
        line.append(f" {task}", style="bold")
    if text:
        line.append(f" {text}", style="dim")
    return line


def _progress(stats: TaskStats | None) -> RenderableType:
    if stats is None or stats.total == 0:
        return Text("")
    final = stats.by_status.get(TaskStatus.COMPLETED, 0) + stats.by_status.get(TaskStatus.FAILED, 0)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=stats.total, completed=final, width=40),
        Text(f"{final}/{stats.total} finished"),
    )
    return bar


def counts_line(stats: TaskStats | None) -> Text:
    """``pending 3 · ready 1 · ...`` from the store's stats."""
    if stats is None:
        return Text("tasks: …", style="dim")
    line = Text(f"tasks {stats.total}: ")
    for status in TaskStatus:
        count = stats.by_status.get(status, 0)
        if count:
            line.append(
                f"{status} {count}  ",
                style=_KIND_STYLE.get(
                    {"completed": "completed", "failed": "failed"}.get(status.value, ""), ""
                ),
            )
    line.append(f"(ready now {stats.ready})", style="dim")
    return line


def agents_table(orchestrator: Orchestrator) -> Table:
    """The agents of this run: status, task, activity, time on task, done/failed."""
    table = Table(expand=True)
    id_column(table, "agent", (a.agent_id for a in orchestrator.agents))
    table.add_column("status", no_wrap=True)
    id_column(table, "task", (a.state.task_id or "" for a in orchestrator.agents))
    for name in ("title", "activity"):
        table.add_column(name, ratio=1, no_wrap=True)
    for name in ("time", "done", "failed"):
        table.add_column(name, no_wrap=True)
    now = time.monotonic()
    for agent in orchestrator.agents:
        a = agent.state
        elapsed = f"{now - a.task_started:.0f}s" if a.task_started else ""
        table.add_row(
            agent.agent_id,
            str(a.status),
            a.task_id or "",
            a.task_title or "",
            a.activity[:60],
            elapsed,
            str(a.completed),
            str(a.failed),
        )
    return table


def live_view(orchestrator: Orchestrator, stats: TaskStats | None) -> RenderableType:
    """Agents, task counts and the last events of this run."""
    title = f"jetpack run {orchestrator.run_id} — executor {orchestrator.context.executor.name}"
    if orchestrator.stop_reason is StopReason.DRAINED:
        title += f" — {StopReason.DRAINED}"
    elif orchestrator.stopping:
        title += " — stopping (Ctrl+C again to kill running attempts)"
    events = [e for e in orchestrator.events.recent if e.kind != "progress"][-8:]
    return Group(
        Text(title, style="bold"),
        agents_table(orchestrator),
        _progress(stats),
        counts_line(stats),
        *[event_line(e) for e in events],
    )


async def watch(
    orchestrator: Orchestrator, tasks: TaskStore, run: asyncio.Task[RunSummary]
) -> None:
    """Show :func:`live_view` on the terminal until ``run`` ends (task counts read every second)."""
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


def presence_table(agents: Sequence[AgentPresence]) -> Table:
    """Agents known to the mail bus (any process), from their heartbeats."""
    table = Table(title="agents")
    id_column(table, "agent", (p.agent_id for p in agents))
    for name in ("status", "seen", "run", "pid"):
        table.add_column(name, no_wrap=True)
    id_column(table, "task", (str(p.info.get("task_id") or "") for p in agents))
    table.add_column("title", ratio=1)
    for name in ("done", "failed"):
        table.add_column(name, no_wrap=True)
    now = utcnow()
    for p in agents:
        info = p.info
        table.add_row(
            p.agent_id,
            str(p.status) if p.online else "offline",
            f"{(now - p.last_seen).total_seconds():.0f}s ago",
            str(info.get("run_id", "")),
            str(info.get("pid", "")),
            str(info.get("task_id") or ""),
            str(info.get("task_title") or ""),
            str(info.get("completed", "")),
            str(info.get("failed", "")),
        )
    return table


def leases_table(leases: Sequence[Lease]) -> Table:
    """Live leases."""
    table = Table("path", title="leases")
    id_column(table, "agent", (lease.agent_id for lease in leases))
    table.add_column("expires", no_wrap=True)
    for lease in leases:
        table.add_row(lease.path, lease.agent_id, f"{lease.expires_at:%H:%M:%S}")
    return table


def _done_by(task: Task) -> str:
    result = task.metadata.get("result")
    agent = result.get("agent_id") if isinstance(result, dict) else None
    return str(agent or task.assigned_agent or "")


def summary_table(tasks: Sequence[Task]) -> Table:
    """One row per task: status, who did it, attempts, seconds of its last attempt."""
    table = Table(title="summary")
    id_column(table, "task", (t.id for t in tasks))
    table.add_column("title", ratio=1)
    table.add_column("status", no_wrap=True)
    id_column(
        table,
        "agent",
        (
            str((t.metadata.get("result") or {}).get("agent_id") or t.assigned_agent or "")
            for t in tasks
        ),
    )
    table.add_column("tries", no_wrap=True)
    table.add_column("secs", no_wrap=True)
    for t in tasks:
        result = t.metadata.get("result")
        result = result if isinstance(result, dict) else {}
        attempts = t.retry_count + (1 if t.status is TaskStatus.COMPLETED else 0)
        style = "green" if t.status is TaskStatus.COMPLETED else "red"
        secs = result.get("duration_s")
        table.add_row(
            t.id,
            t.title,
            f"[{style}]{t.status}[/]",
            _done_by(t),
            str(attempts),
            f"{secs:.1f}" if isinstance(secs, int | float) else "",
        )
    return table
