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
from pathlib import Path
from typing import Any

import pytest

from jetpack.shared import Task, TaskStatus, repeatable
from jetpack.shared.config import CONFIG_FILE, dump_toml, load_config
from jetpack.shared.errors import ConflictError
from jetpack.shared.registry import create_store
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker, edge_project, edge_worker

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
            self.env.update({"JETPACK_WORKER_URL": edge.url, "JETPACK_API_TOKEN": edge.token})
        if backend == "edge":  # tasks and mail on the Worker, memory on each machine
            self.env.update({"JETPACK_MODE": "edge", "JETPACK_MEMORY_BACKEND": "local"})
        elif backend == "mixed":  # the reverse: local tasks and mail, memory on the Worker
            self.env.update({"JETPACK_MEMORY_BACKEND": "cloudflare"})
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
            "cf_cass": {"embedder": "none"},
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


def assert_dependency_order(tasks: dict[str, Task]) -> None:
    """Judged on the store's own clock: a run's events are written after the store call
    returns, so another run can claim a dependant between a commit and its event line."""
    for task in tasks.values():
        for dep in task.dependencies:
            claimed, done = task.last_attempt_at, tasks[dep].completed_at
            assert claimed is not None and done is not None
            assert claimed >= done, f"{task.id} started before {dep} completed"


@pytest.fixture(params=["local", "edge"])
def swarm(request: pytest.FixtureRequest, tmp_path: Path) -> Swarm:
    """``local``: stores in one shared folder; ``edge``: tasks and mail on a Worker, local
    memory; ``mixed``: local tasks and mail, memory on a Worker."""
    edge: EdgeProject | None = None
    if request.param != "local":
        edge = request.getfixturevalue("edge_project")
    return Swarm(tmp_path, request.param, edge)


@pytest.mark.parametrize("swarm", ["local", "edge", "mixed"], indirect=True)
def test_two_runs_share_200_tasks_exactly_once_in_dependency_order(swarm: Swarm) -> None:
    laptop, ci = swarm.folder("laptop"), swarm.folder("ci")
    observer = swarm.folder("observer")
    swarm.seed(laptop, graph(200, 0.05))
    runs = [swarm.start(f, "--executor", "demo", "--until-empty", "-n", "3") for f in (laptop, ci)]

    def both_seen() -> bool:
        shown = swarm.cli(observer, "status", "--json")
        if shown.returncode != 0:
            return False
        agents = json.loads(shown.stdout)["agents"]
        runs = {a["info"].get("run_id") for a in agents}
        return len(runs) >= 2 and all(a["info"].get("host") for a in agents)

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
    assert_dependency_order(tasks)


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

    def holding() -> set[str]:
        return {e["task_id"] for e in of_kind([doomed], "claimed")} - {
            e["task_id"] for e in of_kind([doomed], "completed")
        }

    wait_for(lambda: len(of_kind([doomed], "completed")) >= 3 and holding(), timeout=120)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    held_when_killed = holding()
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


def test_a_run_does_not_wait_for_another_runs_live_agent(swarm: Swarm) -> None:
    busy, idle = swarm.folder("busy"), swarm.folder("idle")
    swarm.seed(busy, [{"id": "long", "title": "Long", "metadata": {"demo": {"seconds": 12}}}])
    holder = swarm.start(busy, "--executor", "demo", "--until-empty", "-n", "1")
    wait_for(lambda: of_kind([busy], "claimed"), timeout=60)
    started = time.monotonic()
    quitter = swarm.start(idle, "--executor", "demo", "--until-empty", "-n", "2")
    finish(quitter, timeout=60)
    waited = time.monotonic() - started
    task = swarm.all_tasks(idle)["long"]
    assert task.status in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS), "it waited for the task"
    assert not of_kind([idle], "claimed")
    finish(holder, timeout=60)
    assert swarm.all_tasks(busy)["long"].status is TaskStatus.COMPLETED
    assert waited < 11, waited


def test_cancel_reaches_the_agent_in_another_process(swarm: Swarm, tmp_path: Path) -> None:
    runner, desk = swarm.folder("runner"), swarm.folder("desk")
    pids = tmp_path / "pids"
    swarm.seed(
        runner,
        [
            {
                "id": "c1",
                "title": "Sleeps",
                "metadata": {"command": f"echo $$ >> {pids}; sleep 60"},
            },
            {"id": "c2", "title": "After", "dependencies": ["c1"], "metadata": {"command": "true"}},
        ],
    )
    run = swarm.start(runner, "--executor", "command", "-n", "1")

    def attempt(n: int) -> int:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) >= n, timeout=60)
        return int(pids.read_text().split()[n - 1])

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        first = attempt(1)
        handed = swarm.cli(desk, "task", "cancel", "c1")
        assert handed.returncode == 0, handed.stdout + handed.stderr
        assert "handed back" in handed.stdout
        wait_for(lambda: gone(first), timeout=10)
        second = attempt(2)  # ready again, no retry used: the runner takes it again
        assert swarm.all_tasks(desk)["c1"].retry_count == 0
        failed = swarm.cli(desk, "task", "cancel", "c1", "--fail")
        assert failed.returncode == 0, failed.stdout + failed.stderr
        assert "failed" in failed.stdout
        wait_for(lambda: gone(second), timeout=10)
        tasks = swarm.all_tasks(desk)
        assert tasks["c1"].status is TaskStatus.FAILED
        assert (tasks["c1"].last_error or "").startswith("cancelled")
        assert tasks["c2"].status is TaskStatus.BLOCKED
        again = swarm.cli(desk, "task", "cancel", "c1")
        assert again.returncode == 1 and "already failed" in again.stderr
        waiting = swarm.cli(desk, "task", "cancel", "c2")
        assert waiting.returncode == 1 and "not running" in waiting.stderr
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    assert [e["task_id"] for e in of_kind([runner], "cancelled")] == ["c1", "c1"]


def test_a_worker_restart_mid_run_fails_no_task(
    tmp_path: Path, edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    swarm = Swarm(tmp_path, "edge", edge_project)
    one, two = swarm.folder("one"), swarm.folder("two")
    swarm.seed(one, graph(100, 0.2))
    runs = [swarm.start(f, "--executor", "demo", "--until-empty", "-n", "3") for f in (one, two)]
    wait_for(lambda: len(of_kind([one, two], "completed")) >= 20, timeout=120)
    edge_worker.restart()
    outputs = [finish(run) for run in runs]
    tasks = swarm.all_tasks(one)
    assert {t.status for t in tasks.values()} == {TaskStatus.COMPLETED}
    assert all(t.retry_count == 0 for t in tasks.values()), [
        (t.id, t.last_error) for t in tasks.values() if t.retry_count
    ]
    completed = Counter(e["task_id"] for e in of_kind([one, two], "completed"))
    assert completed == Counter({t: 1 for t in tasks})
    for folder, (_, err) in zip((one, two), outputs, strict=True):
        down = [e["text"] for e in of_kind([folder], "offline")]
        back = [e["text"] for e in of_kind([folder], "online")]
        assert len(down) == len(back) <= 2, (down, back)  # once per store that went away
        assert err.count("does not answer") == len(down), err
    assert of_kind([one, two], "offline"), "no run noticed the restart"


async def test_a_repeated_report_in_one_scope_is_answered_not_applied_twice(
    edge_project: EdgeProject,
) -> None:
    env = {"JETPACK_WORKER_URL": edge_project.url, "JETPACK_API_TOKEN": edge_project.token}
    config = load_config(Path("."), env={**env, "JETPACK_TASKS_BACKEND": "cloudflare"})
    async with create_store(config, "tasks") as store:
        await store.create_tasks([{"id": "r1", "title": "R1"}, {"id": "r2", "title": "R2"}])
        for task_id in ("r1", "r2"):
            assert await store.claim_task(task_id, "agent-x-1") is not None
        with repeatable("agent-x-1:r1:attempt-1:complete"):
            first = await store.complete_task("r1", "agent-x-1", result={"summary": "done"})
            # The answer was lost, say: the same call again is the same request.
            again = await store.complete_task("r1", "agent-x-1", result={"summary": "done"})
        assert again.status is TaskStatus.COMPLETED and again.completed_at == first.completed_at
        await store.complete_task("r2", "agent-x-1")
        with pytest.raises(ConflictError):  # outside a scope a repeat is a new request
            await store.complete_task("r2", "agent-x-1")


def test_status_watch_follows_runs_that_start_after_it(swarm: Swarm) -> None:
    observer, worker = swarm.folder("observer"), swarm.folder("worker")
    swarm.seed(
        worker,
        [{"id": f"w{i}", "title": f"W{i}", "metadata": {"demo": {"seconds": 4}}} for i in range(2)],
    )
    watch = subprocess.Popen(
        swarm.argv(observer, "status", "--watch"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=swarm.env,
    )
    try:
        time.sleep(3)  # the watch has read the stores once: no agent yet
        run = swarm.start(worker, "--executor", "demo", "--until-empty", "-n", "2")
        wait_for(lambda: len(of_kind([worker], "claimed")) == 2, timeout=60)
        time.sleep(1.5)
    finally:
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    run_id = of_kind([worker], "claimed")[0]["run_id"]
    # The run's agents and their tasks came from the bus (the full re-read is every 30 s).
    assert f"agent-{run_id}-1" in out and f"agent-{run_id}-2" in out, out
    assert "busy" in out and "w0" in out and "w1" in out, out
    finish(run)


def test_an_outage_longer_than_the_claim_keeps_the_work_and_the_task_runs_again(
    tmp_path: Path, edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    swarm = Swarm(tmp_path, "edge", edge_project)
    repo = swarm.folder("repo", claim_ttl_ms=3_000, worktrees=True)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        if args[0] == "add":
            (repo / ".gitignore").write_text(".jetpack/\n.cass/\n")
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True
        )
    marker = tmp_path / "attempts"
    command = f"echo x >> {marker}; echo work > result.txt; sleep 3"
    swarm.seed(repo, [{"id": "o1", "title": "O1", "metadata": {"command": command}}])
    run = swarm.start(repo, "--executor", "command", "--until-empty", "-n", "1")
    wait_for(marker.exists, timeout=60)
    edge_worker.stop()  # the Worker is away longer than the claim's 3 s
    time.sleep(6)
    edge_worker.server.start()
    _, err = finish(run, timeout=180)
    task = swarm.all_tasks(repo)["o1"]
    assert task.status is TaskStatus.COMPLETED and task.retry_count == 1  # the lapse, no failure
    assert marker.read_text().split() == ["x", "x"]  # it ran again
    kept = list((repo / ".jetpack" / "worktrees" / "kept").iterdir())
    assert len(kept) == 1 and (kept[0] / "result.txt").read_text() == "work\n"
    assert [e["task_id"] for e in of_kind([repo], "claim_lost")] == ["o1"]
    assert err.count("task store does not answer") == 1, err
