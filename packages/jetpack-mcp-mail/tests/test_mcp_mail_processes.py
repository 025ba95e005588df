"""Real OS processes: lease races with a fencing-token recorder, offline delivery, kill -9."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import MessageType
from jetpack.shared.rules import paths_overlap

CHILD = Path(__file__).with_name("mcp_mail_child.py")
Grant = tuple[int, str, int, int, int]


@pytest.mark.multiprocess
def test_four_processes_500_lease_cycles_never_overlap(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    start_at = time.time() + 2.0
    outs = [tmp_path / f"grants-{i}.json" for i in range(4)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                "leases",
                str(mail_dir),
                f"proc-{i}",
                "500",
                str(start_at),
                str(out),
            ]
        )
        for i, out in enumerate(outs)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    grants: list[Grant] = [
        (proc, path, token, start, end)
        for proc, out in enumerate(outs)
        for path, token, start, end in json.loads(out.read_text())
    ]
    assert len(grants) >= 400, f"only {len(grants)} grants: the race proves little"
    tokens = [g[2] for g in grants]
    assert len(set(tokens)) == len(tokens), "a fencing token was granted twice"
    violations = []
    for x, y in itertools.combinations(grants, 2):
        if x[0] == y[0] or not paths_overlap(x[1], y[1]):
            continue
        first, second = (x, y) if x[2] < y[2] else (y, x)
        # The grant with the higher token began after the other was released.
        if not first[4] < second[3]:
            violations.append((first, second))
    assert violations == []


def _spawn(
    mail_dir: Path, agent: str, out: Path, tmp: Path, *, ack: bool
) -> subprocess.Popen[bytes]:
    ready = tmp / f"{out.name}.ready"
    args = [
        sys.executable,
        str(CHILD),
        "subscribe",
        str(mail_dir),
        agent,
        str(out),
        str(ready),
        str(tmp / "stop"),
    ]
    proc = subprocess.Popen([*args, "--ack"] if ack else args)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "child died while starting"
        assert time.monotonic() < deadline, "child did not start"
        time.sleep(0.02)
    return proc


@contextmanager
def _child(
    mail_dir: Path, agent: str, out: Path, tmp: Path, *, ack: bool
) -> Iterator[subprocess.Popen[bytes]]:
    proc = _spawn(mail_dir, agent, out, tmp, ack=ack)
    try:
        yield proc
    finally:
        (tmp / "stop").touch()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            (tmp / "stop").unlink(missing_ok=True)


def _lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line]


def _unacked(mail_dir: Path, agent: str) -> set[str]:
    with sqlite3.connect(mail_dir / "mail.db") as conn:
        rows = conn.execute(
            "SELECT id FROM messages WHERE to_agent = ? AND acked_at IS NULL", (agent,)
        )
        return {r[0] for r in rows}


async def _wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.multiprocess
async def test_direct_message_to_later_agent_is_delivered_once(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    async with MCPMailAdapter("sender", mail_dir) as sender:
        sent = await sender.send_to("late", MessageType.TASK_ASSIGNED, {"task_id": "bd-1"})
        first = tmp_path / "first.log"
        with _child(mail_dir, "late", first, tmp_path, ack=True):
            await _wait_for(lambda: not _unacked(mail_dir, "late"))
        assert [line[0] for line in _lines(first)] == [sent.id]
        second = tmp_path / "second.log"
        with _child(mail_dir, "late", second, tmp_path, ack=True):
            marker = await sender.publish(MessageType.TASK_PROGRESS, {"marker": True})
            await _wait_for(lambda: any(line[0] == marker.id for line in _lines(second)))
        assert [line[0] for line in _lines(second)] == [marker.id]
        assert await sender.fetch_inbox() == []


@pytest.mark.multiprocess
async def test_kill_9_subscriber_gets_exactly_the_unacknowledged_on_restart(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    total = 300
    async with MCPMailAdapter("sender", mail_dir) as sender:
        before = tmp_path / "before.log"
        proc = _spawn(mail_dir, "worker", before, tmp_path, ack=True)
        sent: list[str] = []
        killed = False
        for i in range(total):
            message = await sender.send_to("worker", MessageType.TASK_PROGRESS, {"i": i})
            sent.append(message.id)
            if not killed and len(_lines(before)) >= 80:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                killed = True
            await asyncio.sleep(0.001)
        if not killed:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        received_before = [line[0] for line in _lines(before)]
        unacked = _unacked(mail_dir, "worker")
        assert 0 < len(unacked) < total, "the kill should land mid-stream"
        assert set(sent) - unacked <= set(received_before)

        after = tmp_path / "after.log"
        with _child(mail_dir, "worker", after, tmp_path, ack=True):
            await _wait_for(lambda: not _unacked(mail_dir, "worker"))
            await asyncio.sleep(0.3)  # anything extra would show up now
        received_after = [line[0] for line in _lines(after)]
        assert len(received_after) == len(set(received_after)), "duplicate delivery after restart"
        assert set(received_after) == unacked
        assert received_after == [m for m in sent if m in unacked], "order not preserved"


@pytest.mark.multiprocess
async def test_broadcasts_cross_processes_in_order(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    out = tmp_path / "sub.log"
    async with MCPMailAdapter("sender", mail_dir) as sender:
        with _child(mail_dir, "listener", out, tmp_path, ack=False):
            sent = [
                (await sender.publish(MessageType.TASK_PROGRESS, {"i": i})).id for i in range(200)
            ]
            await _wait_for(lambda: len(_lines(out)) >= 200)
        assert [line[0] for line in _lines(out)] == sent
