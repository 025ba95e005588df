"""``jetpack demo``: a throw-away project, a small dependency graph, 3 agents, no API key.

Everything is real except the agent: the local task, mail and memory stores
(SQLite files in a temp dir), claims, leases, back-off, memories and events.
The deterministic demo executor stands in for Claude Code; one task fails its
first attempt on purpose, to show a retry after back-off.

The demo never writes into a team's edge project: its project is always a new
local one. ``JETPACK_MODE``, ``JETPACK_*_BACKEND`` and the other store
variables are ignored (one line says so when they, or the project here, point
at the edge), and ``--dir`` refuses a folder that already holds a project.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jetpack.cli._app import GITIGNORE, default_config
from jetpack.cli._common import STORES, console, find_root, open_adapters, state
from jetpack.cli._executors import DemoExecutor
from jetpack.cli._guard import RunGuard
from jetpack.cli._run import run_project
from jetpack.cli._settings import load_settings
from jetpack.cli._view import summary_table
from jetpack.shared import TaskStatus
from jetpack.shared.config import CONFIG_FILE, ENV_VARS, Backend, dump_toml, load_config
from jetpack.shared.errors import JetpackError, ValidationError

__all__ = ["DEMO_TASKS", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_TASKS: list[dict[str, Any]] = [
    {"id": "design", "title": "Design the data model", "priority": "critical"},
    {"id": "skeleton", "title": "Set up the project skeleton", "priority": "high"},
    {
        "id": "storage",
        "title": "Write the storage layer in src/storage/",
        "dependencies": ["design", "skeleton"],
    },
    {
        "id": "api",
        "title": "Write the HTTP API",
        "dependencies": ["storage"],
        "metadata": {"files": ["src/api/**"]},
    },
    {
        "id": "cli",
        "title": "Write the command line",
        "dependencies": ["storage"],
        "metadata": {"files": ["src/cli/**"]},
    },
    {
        "id": "auth",
        "title": "Add authentication to the API",
        "dependencies": ["api"],
        "metadata": {"files": ["src/api/auth.py"], "demo": {"fail_times": 1}},
    },
    {
        "id": "tests",
        "title": "Write integration tests",
        "dependencies": ["api", "cli"],
        "priority": "high",
    },
    {"id": "docs", "title": "Write the user guide", "dependencies": ["cli"], "priority": "low"},
    {"id": "release", "title": "Release 1.0", "dependencies": ["auth", "tests", "docs"]},
]
"""The demo's tasks: two roots, a fan-out, a planned failure, a join."""


def local_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` without the variables that choose or reach the stores (``JETPACK_MODE``…)."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k not in ENV_VARS}


def edge_nearby(env: Mapping[str, str] | None = None) -> str | None:
    """What points at the edge here (a variable, or the project's config), or None."""
    env = os.environ if env is None else env
    set_vars = [k for k in ENV_VARS if k.endswith(("_MODE", "_BACKEND")) and env.get(k)]
    for var in set_vars:
        if env[var] in ("edge", Backend.CLOUDFLARE.value):
            return f"{var}={env[var]} is set"
    root = state.project.resolve() if state.project is not None else find_root(Path.cwd())
    if root is None:
        return None
    try:
        config = load_config(root, env)
    except JetpackError:
        return None
    if any(config.backend_for(s) is Backend.CLOUDFLARE for s in STORES):
        return f"the project in {root} is on the edge"
    return None


@contextlib.contextmanager
def _project(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        if (directory / CONFIG_FILE).exists():
            raise ValidationError(
                "--dir",
                f"{directory} already holds a Jetpack project; the demo only writes into a "
                "new folder (or leave --dir out for a temporary one)",
            )
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="jetpack-demo-") as tmp:
        yield Path(tmp)


async def run_demo(
    *, guard: RunGuard, agents: int = 3, directory: Path | None = None, live: bool = False
) -> int:
    """Run the demo; return the exit code (0 when every task completed once)."""
    edge = edge_nearby()
    with _project(directory) as root:
        data = default_config()
        data["agents"].update({"count": agents, "executor": "demo"})
        data["orchestrator"].update({"poll_s": 0.2, "lease_wait_s": 5.0, "heartbeat_s": 2.0})
        data["beads"] = {"retry_base_ms": 1000}
        (root / CONFIG_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / CONFIG_FILE).write_text(dump_toml(data), encoding="utf-8")
        (root / CONFIG_FILE).parent.joinpath(".gitignore").write_text(GITIGNORE, encoding="utf-8")
        config = load_config(root, local_env())
        settings = load_settings(config)
        if edge is not None:
            console.print(
                f"{edge}: the demo never writes into an edge project, so it runs on a "
                "throw-away local project",
                soft_wrap=True,
            )
        console.print(
            f"[bold]jetpack demo[/] in {root}: {len(DEMO_TASKS)} tasks, {agents} agents, "
            "demo executor (no network, no API key)"
        )
        async with open_adapters(config) as stores:
            await stores.tasks.create_tasks(DEMO_TASKS)
        summary, signalled = await run_project(
            config,
            settings,
            DemoExecutor(),
            guard=guard,
            agents=agents,
            until_empty=True,
            live=live,
        )
        async with open_adapters(config) as stores:
            tasks = await stores.tasks.list_tasks()
            memories = await stores.memory.get_stats()
        console.print(summary_table(tasks))
        done = sum(t.status is TaskStatus.COMPLETED for t in tasks)
        console.print(
            f"{done}/{len(tasks)} tasks completed in {summary.duration_s:.1f}s by {agents} agents; "
            f"{len(summary.retried)} retry after back-off; {memories.total} memories recorded"
        )
        if directory is not None:
            console.print(f"project kept in {root} (try: jetpack -C {root} status)")
        if signalled:
            return 130
        return 0 if done == len(tasks) and len(summary.completed) == len(tasks) else 1
