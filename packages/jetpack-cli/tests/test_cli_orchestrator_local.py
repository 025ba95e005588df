"""The orchestrator on the real local stores, found through the registry (tasks and mail)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jetpack.cli import CommandExecutor, EventLog, Orchestrator, OrchestratorSettings
from jetpack.shared import FailureType, TaskStatus
from jetpack.shared.config import CONFIG_FILE, JetpackConfig, dump_toml, load_config
from jetpack.shared.registry import create_store


def project(root: Path, **beads: Any) -> JetpackConfig:
    (root / CONFIG_FILE).parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"mode": "local"}
    if beads:
        data["beads"] = beads
    (root / CONFIG_FILE).write_text(dump_toml(data))
    return load_config(root, env={})


def orchestrator(config: JetpackConfig, tasks: Any, log: Path, **settings: Any) -> Orchestrator:
    base: dict[str, Any] = {
        "poll_s": 30.0,
        "heartbeat_s": 0.2,
        "shutdown_grace_s": 0.5,
        "kill_grace_s": 0.5,
    }
    base.update(settings)
    return Orchestrator(
        tasks=tasks,
        memory=None,
        mail_factory=lambda agent: create_store(config, "mail", agent_id=agent),
        executor=CommandExecutor(f"echo $JETPACK_TASK_ID >> {log}", kill_grace_s=0.5),
        settings=OrchestratorSettings(**base),
        project_dir=config.project_dir,
        agent_count=3,
        until_empty=True,
        events=EventLog(None),
    )


async def test_a_crashed_runs_claim_is_recovered_and_finished(tmp_path: Path) -> None:
    config = project(tmp_path, retry_base_ms=50)
    log = tmp_path / "ran.log"
    async with create_store(config, "tasks") as tasks:
        await tasks.create_tasks([{"id": "a", "title": "A"}, {"id": "b", "title": "B"}])
        held = await tasks.claim_next("agent-dead-1", ttl_ms=100)  # a run that crashed
        assert held is not None
        await asyncio.sleep(0.2)
        summary = await asyncio.wait_for(orchestrator(config, tasks, log).run(), 30)
        assert sorted(summary.completed) == ["a", "b"]
        recovered = await tasks.get_task(held.id)
        assert recovered is not None and recovered.status is TaskStatus.COMPLETED
        assert recovered.retry_count == 1 and recovered.failure_type is FailureType.STALLED
    assert sorted(log.read_text().split()) == ["a", "b"]


async def test_leases_are_visible_to_other_processes_while_a_task_runs(tmp_path: Path) -> None:
    config = project(tmp_path)
    log = tmp_path / "ran.log"
    async with create_store(config, "tasks") as tasks:
        await tasks.create_task(
            {"id": "t", "title": "Edit src/app.py", "metadata": {"command": "sleep 1.5"}}
        )
        orch = orchestrator(config, tasks, log)
        run = asyncio.create_task(orch.run())
        async with create_store(config, "mail", agent_id="observer") as mail:
            for _ in range(100):
                leases = await mail.list_leases()
                if leases:
                    break
                await asyncio.sleep(0.05)
            assert [(le.path, le.agent_id.startswith("agent-")) for le in leases] == [
                ("src/app.py", True)
            ]
            assert not await mail.acquire_lease("src/**", 1000)
            for _ in range(100):  # the next heartbeat (0.2 s) names the task
                agents = await mail.list_agents()
                if any(a.info.get("task_id") == "t" for a in agents):
                    break
                await asyncio.sleep(0.05)
            assert any(a.info.get("task_id") == "t" and a.status == "busy" for a in agents)
            await asyncio.wait_for(run, 30)
            assert await mail.list_leases() == []


WORKER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from jetpack.cli import CommandExecutor, EventLog, Orchestrator, OrchestratorSettings
    from jetpack.shared.config import load_config
    from jetpack.shared.registry import create_store

    async def main() -> None:
        root, log = Path(sys.argv[1]), sys.argv[2]
        config = load_config(root, env={})
        async with create_store(config, "tasks") as tasks:
            orch = Orchestrator(
                tasks=tasks, memory=None,
                mail_factory=lambda a: create_store(config, "mail", agent_id=a),
                executor=CommandExecutor(
                    f"echo $JETPACK_TASK_ID $JETPACK_AGENT_ID >> {log}; sleep 0.2"),
                settings=OrchestratorSettings(poll_s=0.05, heartbeat_s=0.5),
                project_dir=root, agent_count=4, until_empty=True, events=EventLog(None))
            summary = await orch.run()
        print(len(summary.completed))

    asyncio.run(main())
""")


@pytest.mark.multiprocess
def test_two_processes_never_run_a_task_twice(tmp_path: Path) -> None:
    config = project(tmp_path)
    log = tmp_path / "ran.log"

    async def seed() -> None:
        async with create_store(config, "tasks") as tasks:
            await tasks.create_tasks([{"id": f"t{i}", "title": f"T{i}"} for i in range(40)])

    asyncio.run(seed())
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    counts = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        counts.append(int(out.strip().splitlines()[-1]))
    runs = [line.split() for line in log.read_text().splitlines()]
    assert Counter(task for task, _ in runs) == Counter({f"t{i}": 1 for i in range(40)})
    assert sum(counts) == 40
    assert all(c > 0 for c in counts), f"one process did all the work: {counts}"
    assert len({agent.split("-")[1] for _, agent in runs}) == 2
    assert json.dumps(counts)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def repository(root: Path, file: str) -> None:
    """A git repository at ``root`` with one committed file (``base``) and the stores ignored."""
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".beads/\n.mail/\n.cass/\n.jetpack/\n")
    (root / file).write_text("base\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")


async def test_worktrees_merge_on_success_and_fail_on_conflict(tmp_path: Path) -> None:
    config = project(tmp_path)
    repository(tmp_path, "shared.txt")
    async with create_store(config, "tasks") as tasks:
        await tasks.create_tasks(
            [
                {"id": "new-file", "title": "N", "metadata": {"command": "echo hi > added.txt"}},
                {
                    "id": "edit-1",
                    "title": "E1",
                    "max_retries": 0,
                    "metadata": {"command": "sleep 0.3; echo one > shared.txt"},
                },
                {
                    "id": "edit-2",
                    "title": "E2",
                    "max_retries": 0,
                    "metadata": {"command": "sleep 0.3; echo two > shared.txt"},
                },
            ]
        )
        orch = orchestrator(config, tasks, tmp_path / "log", worktrees=True)
        summary = await asyncio.wait_for(orch.run(), 60)
        assert "new-file" in summary.completed
        assert (tmp_path / "added.txt").read_text() == "hi\n"
        # both edits branched from the same base: one merges, the other conflicts
        assert len(summary.failed) == 1 and len(summary.completed) == 2
        failed = await tasks.get_task(summary.failed[0])
        assert failed is not None and "merge of jetpack/" in (failed.last_error or "")
        done = await tasks.get_task("new-file")
        assert done is not None and "merged jetpack/new-file" in done.metadata["result"]["git"]
    assert f"jetpack/{summary.failed[0]}" in git(tmp_path, "branch", "--list", "jetpack/*")
    assert git(tmp_path, "status", "--porcelain").strip() == ""  # the merge was aborted
    assert not any((tmp_path / ".jetpack" / "worktrees").iterdir())


async def test_a_lost_claim_keeps_the_worktree_for_review_and_the_task_runs_again(
    tmp_path: Path,
) -> None:
    config = project(tmp_path)
    repository(tmp_path, "base.txt")
    marker = tmp_path / "attempts"
    command = f"echo x >> {marker}; echo work > result.txt; sleep 1.5"
    async with create_store(config, "tasks") as tasks:
        await tasks.create_task({"id": "w", "title": "W", "metadata": {"command": command}})
        orch = orchestrator(config, tasks, tmp_path / "log", worktrees=True, claim_ttl_ms=600)
        run = asyncio.create_task(orch.run())
        for _ in range(200):  # the first attempt is running
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        # Someone ends the claim (as `jetpack task cancel` does for a holder that is gone).
        await tasks.update_task("w", {"status": TaskStatus.PENDING})
        summary = await asyncio.wait_for(run, 60)
        assert summary.completed == ["w"]
        done = await tasks.get_task("w")
        assert done is not None and done.status is TaskStatus.COMPLETED
    assert marker.read_text().split() == ["x", "x"]  # it ran again
    kinds = [e.kind for e in orch.events.recent]
    assert "claim_lost" in kinds and "kept" in kinds
    kept = list((tmp_path / ".jetpack" / "worktrees" / "kept").iterdir())
    assert len(kept) == 1 and (kept[0] / "result.txt").read_text() == "work\n"
    branches = git(
        tmp_path, "for-each-ref", "--format=%(refname:short)", "refs/heads/jetpack/kept"
    ).split()
    assert len(branches) == 1
    assert "result.txt" in git(tmp_path, "show", "--name-only", "--format=", branches[0])
    assert (tmp_path / "result.txt").read_text() == "work\n"  # the second attempt merged
