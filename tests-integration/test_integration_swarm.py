"""Many `jetpack start` runs on one project (issue 16), as real CLI processes.

Each "machine" is a project folder of its own. They share one project either
through local stores in one shared folder (``[local]`` paths) or on the edge
(a real Worker on workerd, one project token). Checked from the stores and
each folder's ``.jetpack/events.jsonl``: every task runs exactly once, in
dependency order; a run killed with SIGKILL loses nothing (its claims are
retaken after the claim TTL); a Worker restart fails no task; ``jetpack task
cancel`` reaches the agent running a task in another process; ``jetpack
status`` in a third folder shows every run's agents.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jetpack.shared import Task, TaskStatus
from jetpack.shared.config import CONFIG_FILE, dump_toml, load_config
from jetpack.shared.registry import create_store
from jetpack.shared.testing.edge import EdgeProject, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

pytestmark = pytest.mark.multiprocess

ORCHESTRATOR: dict[str, Any] = {
    "heartbeat_s": 0.3,
    "idle_heartbeat_s": 1.0,
    "poll_s": 30.0,  # wake-ups come by mail; the fallback claim never paces these runs
    "shutdown_grace_s": 2.0,
    "kill_grace_s": 0.5,
    "claim_ttl_ms": 30_000,
}


class Swarm:
    """Project folders ("machines") on one project."""

    def __init__(self, root: Path, backend: str, edge: EdgeProject | None) -> None:
        self.root = root
        self.backend = backend
        self.edge = edge
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
        self.env["COLUMNS"] = "200"
        if edge is not None:
            self.env.update(
                {
                    "JETPACK_WORKER_URL": edge.url,
                    "JETPACK_API_TOKEN": edge.token,
                    "JETPACK_TASKS_BACKEND": "cloudflare",
                }
            )
        self.shared = root / "shared"

    def folder(self, name: str, **orchestrator: Any) -> Path:
        """A project folder on the swarm's project, with fast settings."""
        folder = self.root / name
        data: dict[str, Any] = {
            "mode": "local",
            "local": {
                "tasks_db": str(self.shared / "beads.db"),
                "mail_dir": str(self.shared / "mail"),
                "memory_db": str(folder / ".cass" / "memories.db"),
            },
            "orchestrator": {**ORCHESTRATOR, **orchestrator},
            "beads": {"retry_base_ms": 200},
            "cf_beads": {"retry_base_ms": 200},
            "cass": {"embedder": "none"},
        }
        (folder / CONFIG_FILE).parent.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(dump_toml(data), encoding="utf-8")
        return folder

    def argv(self, folder: Path, *args: str) -> list[str]:
        return [sys.executable, "-m", "jetpack.cli", "-C", str(folder), *args]

    def cli(
        self, folder: Path, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(folder, *args),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def start(self, folder: Path, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(folder, "start", "--no-live", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def tasks(self, folder: Path) -> Any:
        """The task store, as ``folder`` sees it (unopened)."""
        return create_store(load_config(folder, env=self.env), "tasks")

    def all_tasks(self, folder: Path) -> dict[str, Task]:
        async def read() -> dict[str, Task]:
            async with self.tasks(folder) as store:
                return {t.id: t for t in await store.list_tasks()}

        return asyncio.run(read())

    def seed(self, folder: Path, tasks: list[dict[str, Any]]) -> None:
        async def write() -> None:
            async with self.tasks(folder) as store:
                await store.create_tasks(tasks)

        asyncio.run(write())


def events(folder: Path) -> list[dict[str, Any]]:
    path = folder / ".jetpack" / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def of_kind(folders: list[Path], kind: str) -> list[dict[str, Any]]:
    return [e for f in folders for e in events(f) if e["kind"] == kind]


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"jetpack start did not end\n{out}\n{err}") from None
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out, err


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def graph(n: int, seconds: float) -> list[dict[str, Any]]:
    """``n`` tasks: a binary tree of dependencies plus some cross edges."""
    tasks = []
    for i in range(n):
        deps = [] if i == 0 else [f"t{(i - 1) // 2:03d}"]
        if i >= 10 and i % 5 == 0 and f"t{i - 7:03d}" not in deps:
            deps.append(f"t{i - 7:03d}")
        tasks.append(
            {
                "id": f"t{i:03d}",
                "title": f"Task {i}",
                "dependencies": deps,
                "metadata": {"demo": {"seconds": seconds}},
            }
        )
    return tasks


def assert_dependency_order(folders: list[Path], tasks: dict[str, Task]) -> None:
    claimed = {e["task_id"]: datetime.fromisoformat(e["time"]) for e in of_kind(folders, "claimed")}
    done = {e["task_id"]: datetime.fromisoformat(e["time"]) for e in of_kind(folders, "completed")}
    for task in tasks.values():
        for dep in task.dependencies:
            assert claimed[task.id] >= done[dep], f"{task.id} started before {dep} completed"


@pytest.fixture(params=["local", "edge"])
def swarm(request: pytest.FixtureRequest, tmp_path: Path) -> Swarm:
    edge: EdgeProject | None = None
    if request.param == "edge":
        edge = request.getfixturevalue("edge_project")
    return Swarm(tmp_path, request.param, edge)


def test_two_runs_share_200_tasks_exactly_once_in_dependency_order(swarm: Swarm) -> None:
    laptop, ci = swarm.folder("laptop"), swarm.folder("ci")
    observer = swarm.folder("observer")
    swarm.seed(laptop, graph(200, 0.05))
    runs = [swarm.start(f, "--executor", "demo", "--until-empty", "-n", "3") for f in (laptop, ci)]

    def both_seen() -> bool:
        shown = swarm.cli(observer, "status", "--json")
        if shown.returncode != 0:
            return False
        return len({a["info"].get("run_id") for a in json.loads(shown.stdout)["agents"]}) >= 2

    seen = wait_for(both_seen, timeout=120, every=0.5)
    for run in runs:
        finish(run)
    assert seen
    tasks = swarm.all_tasks(ci)
    assert len(tasks) == 200
    assert {t.status for t in tasks.values()} == {TaskStatus.COMPLETED}
    assert all(t.retry_count == 0 for t in tasks.values())
    completed = Counter(e["task_id"] for e in of_kind([laptop, ci], "completed"))
    assert completed == Counter({t: 1 for t in tasks}), "a task ran twice, or never"
    assert Counter(e["task_id"] for e in of_kind([laptop, ci], "claimed")) == completed
    by_run = Counter(e["run_id"] for e in of_kind([laptop, ci], "completed"))
    assert len(by_run) == 2 and min(by_run.values()) > 10, by_run
    assert_dependency_order([laptop, ci], tasks)


def test_a_killed_run_loses_nothing_its_claims_are_retaken(swarm: Swarm) -> None:
    ttl = {"claim_ttl_ms": 3_000}
    doomed, survivor = swarm.folder("doomed", **ttl), swarm.folder("survivor", **ttl)
    swarm.seed(
        doomed,
        [
            {"id": f"k{i:02d}", "title": f"K{i}", "metadata": {"demo": {"seconds": 0.6}}}
            for i in range(40)
        ],
    )
    victim = swarm.start(doomed, "--executor", "demo", "-n", "3")
    other = swarm.start(survivor, "--executor", "demo", "--until-empty", "-n", "3")
    wait_for(lambda: len(of_kind([doomed], "completed")) >= 3, timeout=120)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    held_when_killed = {e["task_id"] for e in of_kind([doomed], "claimed")} - {
        e["task_id"] for e in of_kind([doomed], "completed")
    }
    assert held_when_killed, "the killed run held nothing"
    finish(other)
    tasks = swarm.all_tasks(survivor)
    assert {t.status for t in tasks.values()} == {TaskStatus.COMPLETED}, Counter(
        t.status for t in tasks.values()
    )
    completed = Counter(e["task_id"] for e in of_kind([doomed, survivor], "completed"))
    assert completed == Counter({t: 1 for t in tasks})
    survivor_run = {e["run_id"] for e in events(survivor)}
    for task_id in held_when_killed:
        task = tasks[task_id]
        assert task.metadata["result"]["agent_id"].split("-")[1] in survivor_run
        assert task.retry_count == 1  # the lapsed claim, as the contract counts it
