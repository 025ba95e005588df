"""Real OS processes on one database file: claim races and SIGKILL crashes."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from jetpack.beads import BeadsAdapter
from jetpack.shared import FailureType, TaskStatus

WORKER = str(Path(__file__).with_name("beads_worker.py"))


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def reap(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child (if alive), wait for it and close its pipes."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.communicate)


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def test_four_processes_claim_each_task_exactly_once(
    store: BeadsAdapter, db_path: Path
) -> None:
    made = await store.create_tasks([{"title": f"t{i}"} for i in range(200)])
    procs = [spawn("claim", str(db_path), f"proc-{i}", "") for i in range(4)]
    for proc in procs:  # all four imported and opened before any claims
        line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    for proc in procs:
        proc.stdin.write("go\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    results = {}
    for i, proc in enumerate(procs):
        out, err = await asyncio.to_thread(proc.communicate, None, 120)
        assert proc.returncode == 0, err
        results[f"proc-{i}"] = json.loads(out)
    claimed = [task_id for ids in results.values() for task_id in ids]
    assert len(claimed) == len(set(claimed)) == 200  # no double claims, none missed
    assert set(claimed) == {t.id for t in made}
    for agent, ids in results.items():
        for task_id in ids:
            task = await store.get_task(task_id)
            assert task is not None
            assert task.status is TaskStatus.CLAIMED and task.assigned_agent == agent
    assert sum(1 for ids in results.values() if ids) >= 2  # they really raced


async def test_sigkilled_holder_loses_its_claim_after_the_ttl(
    store: BeadsAdapter, db_path: Path
) -> None:
    victim = await store.create_task({"title": "victim", "priority": "critical"})
    others = await store.create_tasks([{"title": f"other {i}"} for i in range(4)])
    proc = spawn("hold", str(db_path), "agent-doomed", "1500")
    line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
    assert line.strip() == victim.id
    await reap(proc)
    assert proc.returncode == -signal.SIGKILL

    held = await store.get_task(victim.id)
    assert held is not None and held.assigned_agent == "agent-doomed"
    first = await store.claim_next("agent-2")  # the claim has not lapsed yet
    assert first is not None and first.id != victim.id
    await asyncio.sleep(1.6)
    taken = await store.claim_next("agent-2")
    assert taken is not None and taken.id == victim.id
    assert taken.assigned_agent == "agent-2"
    assert taken.retry_count == 1 and taken.failure_type is FailureType.STALLED
    # Nothing else was touched or lost.
    rest = {t.id: t for t in await store.list_tasks()}
    assert len(rest) == 5
    untouched = [rest[t.id] for t in others if t.id != first.id]
    assert all(t.status is TaskStatus.READY and t.version == 1 for t in untouched)
    assert integrity(db_path) == "ok"


async def test_sigkill_during_writes_keeps_whole_transactions(
    store: BeadsAdapter, db_path: Path
) -> None:
    proc = spawn("create", str(db_path), "writer", "")
    seen = 0
    while seen < 200:
        line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
        assert line, proc.stderr.read() if proc.stderr else "worker died"
        seen = int(line)
    await reap(proc)
    assert proc.returncode == -signal.SIGKILL
    total = (await store.get_stats()).total
    assert total >= seen and total % 10 == 0  # every batch is all or nothing
    assert integrity(db_path) == "ok"
    with sqlite3.connect(db_path) as conn:  # the dependency index stayed consistent
        assert conn.execute("SELECT count(*) FROM task_deps").fetchone()[0] == 0
    more = await store.create_task({"title": "after the crash"})
    assert (await store.get_task(more.id)) == more
