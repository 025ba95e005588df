"""Renderings of the live view, status and summary (no terminal needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console

from jetpack.cli import DemoExecutor, EventLog, Orchestrator, OrchestratorSettings
from jetpack.cli._events import read_events
from jetpack.cli._view import event_line, live_view, presence_table, summary_table
from jetpack.shared.testing import (
    InMemoryMailBus,
    InMemoryMailHub,
    InMemoryTaskStore,
    eventually,
)


def render(renderable: object) -> str:
    console = Console(record=True, width=160)
    console.print(renderable)
    return console.export_text()


async def test_live_view_status_and_summary_render(tmp_path: Path) -> None:
    tasks = InMemoryTaskStore()
    hub = InMemoryMailHub()
    await tasks.create_tasks(
        [{"id": "a", "title": "Alpha"}, {"id": "b", "title": "Beta", "dependencies": ["a"]}]
    )
    orch = Orchestrator(
        tasks=tasks,
        memory=None,
        mail_factory=lambda a: InMemoryMailBus(a, hub=hub),
        executor=DemoExecutor(base_s=0.2, jitter_s=0.0),
        settings=OrchestratorSettings(poll_s=0.02, heartbeat_s=0.05),
        project_dir=tmp_path,
        agent_count=2,
        until_empty=True,
        events=EventLog(tmp_path / "events.jsonl"),
    )
    run = asyncio.create_task(orch.run())
    assert await eventually(lambda: any(a.state.task_id for a in orch.agents))
    text = render(live_view(orch, await tasks.get_stats()))
    assert f"jetpack run {orch.run_id}" in text and "Alpha" in text and "busy" in text
    assert "no task left to run" not in text
    presence = render(presence_table(list(hub.presence.values())))
    assert orch.agents[0].agent_id in presence
    await run
    assert "— no task left to run" in render(live_view(orch, await tasks.get_stats()))
    summary = render(summary_table(await tasks.list_tasks()))
    assert "completed" in summary and "Beta" in summary
    logged = read_events(tmp_path / "events.jsonl", 50)
    assert [e["kind"] for e in logged].count("completed") == 2
    assert "completed" in render(event_line(logged[-3]))
    assert read_events(tmp_path / "missing.jsonl") == []
