"""Real OS processes: lease races with a fencing-token recorder, offline delivery, kill -9."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import Message, MessageType
from jetpack.shared.errors import LeaseHeldError
from jetpack.shared.rules import paths_overlap
from jetpack.shared.testing import Child, ChildLink, run_children

PATHS = [
    "src/a.py",
    "src/b.py",
    "src/auth/**",
    "src/auth/session.py",
    "src/*.py",
    "docs/*.md",
    "docs/readme.md",
    "tests/test_a.py",
    "tests/**",
    "README.md",
]
Grant = tuple[int, str, int, int, int]

# -- workers (each runs in its own process) ----------------------------------------


async def cycle_leases(
    link: ChildLink, mail_dir: str, agent_id: str, cycles: int
) -> list[tuple[str, int, int, int]]:
    """Acquire → hold → release exclusive leases; ``(path, token, held_from, held_until)``."""
    grants: list[tuple[str, int, int, int]] = []
    offset = sum(map(ord, agent_id))
    async with MCPMailAdapter(agent_id, mail_dir) as bus:
        await link.ready()
        for i in range(cycles):
            path = PATHS[(i * 3 + offset) % len(PATHS)]
            try:
                lease = await bus.grant_lease(path, 10_000)
            except LeaseHeldError:
                continue
            held_from = time.monotonic_ns()
            await asyncio.sleep(0)
            held_until = time.monotonic_ns()
            if not await bus.release_lease(path):
                raise AssertionError(f"lost my lease on {path}")
            grants.append((path, lease.fencing_token, held_from, held_until))
    return grants


async def subscriber(link: ChildLink, mail_dir: str, agent_id: str, ack: bool) -> None:
    """Report every message as it arrives (before acknowledging it), until stopped."""
    bus = MCPMailAdapter(agent_id, mail_dir, poll_interval_ms=200)

    async def record(message: Message) -> None:
        link.report((message.id, message.type.value))
        if ack and message.to_agent == agent_id:
            await bus.acknowledge(message.id)

    bus.subscribe("*", record)
    async with bus:
        await link.ready()
        await link.until_stopped()


# -- helpers ---------------------------------------------------------------------------


def started(mail_dir: Path, agent: str, *, ack: bool) -> Child:
    child = Child(subscriber, str(mail_dir), agent, ack).start()
    child.wait_ready()
    child.go()
    return child


def finish(child: Child) -> None:
    child.stop()
    child.result()


def _unacked(mail_dir: Path, agent: str) -> set[str]:
    with sqlite3.connect(mail_dir / "mail.db") as conn:
        rows = conn.execute(
            "SELECT id FROM messages WHERE to_agent = ? AND acked_at IS NULL", (agent,)
        )
        return {r[0] for r in rows}


async def _received_until(child: Child, marker: str, timeout: float = 60) -> list[str]:
    """Message ids the child reports, up to and excluding ``marker`` (a broadcast sent last)."""
    ids: list[str] = []
    while True:
        message_id, _ = await asyncio.to_thread(child.next_report, timeout)
        if message_id == marker:
            return ids
        ids.append(message_id)


async def _wait_for(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- tests -----------------------------------------------------------------------------


@pytest.mark.multiprocess
def test_four_processes_500_lease_cycles_never_overlap(tmp_path: Path) -> None:
    mail_dir = str(tmp_path / "mail")
    results = run_children(cycle_leases, [(mail_dir, f"proc-{i}", 500) for i in range(4)])
    grants: list[Grant] = [
        (proc, path, token, start, end)
        for proc, found in enumerate(results)
        for path, token, start, end in found
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


@pytest.mark.multiprocess
async def test_direct_message_to_later_agent_is_delivered_once(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    async with MCPMailAdapter("sender", mail_dir) as sender:
        sent = await sender.send_to("late", MessageType.TASK_ASSIGNED, {"task_id": "bd-1"})
        first = await asyncio.to_thread(started, mail_dir, "late", ack=True)
        try:
            assert (await asyncio.to_thread(first.next_report, 60))[0] == sent.id
            await _wait_for(lambda: not _unacked(mail_dir, "late"))
        finally:
            await asyncio.to_thread(finish, first)
        assert first.reports() == []
        second = await asyncio.to_thread(started, mail_dir, "late", ack=True)
        try:
            marker = await sender.publish(MessageType.TASK_PROGRESS, {"marker": True})
            assert await _received_until(second, marker.id) == []  # nothing before it
        finally:
            await asyncio.to_thread(finish, second)
        assert await sender.fetch_inbox() == []


@pytest.mark.multiprocess
async def test_kill_9_subscriber_gets_exactly_the_unacknowledged_on_restart(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    total = 300
    async with MCPMailAdapter("sender", mail_dir) as sender:
        before = await asyncio.to_thread(started, mail_dir, "worker", ack=True)
        received_before: list[str] = []
        sent: list[str] = []
        try:
            for i in range(total):
                message = await sender.send_to("worker", MessageType.TASK_PROGRESS, {"i": i})
                sent.append(message.id)
                if before.exitcode is None:
                    received_before += [m for m, _ in before.reports()]
                    if len(received_before) >= 80:
                        assert before.kill() == -signal.SIGKILL
                await asyncio.sleep(0.001)
        finally:
            if before.exitcode is None:
                before.kill()
            received_before += [m for m, _ in before.reports()]  # sent before it died
            before.close()
        unacked = _unacked(mail_dir, "worker")
        assert 0 < len(unacked) < total, "the kill should land mid-stream"
        assert set(sent) - unacked <= set(received_before)  # acknowledged only once recorded

        after = await asyncio.to_thread(started, mail_dir, "worker", ack=True)
        try:
            await _wait_for(lambda: not _unacked(mail_dir, "worker"))
            marker = await sender.publish(MessageType.TASK_PROGRESS, {"marker": True})
            received_after = await _received_until(after, marker.id)
        finally:
            await asyncio.to_thread(finish, after)
        assert len(received_after) == len(set(received_after)), "duplicate delivery after restart"
        assert set(received_after) == unacked
        assert received_after == [m for m in sent if m in unacked], "order not preserved"


@pytest.mark.multiprocess
async def test_broadcasts_cross_processes_in_order(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    async with MCPMailAdapter("sender", mail_dir) as sender:
        child = await asyncio.to_thread(started, mail_dir, "listener", ack=False)
        try:
            sent = [
                (await sender.publish(MessageType.TASK_PROGRESS, {"i": i})).id for i in range(200)
            ]
            marker = await sender.publish(MessageType.TASK_PROGRESS, {"marker": True})
            received = await _received_until(child, marker.id)
        finally:
            await asyncio.to_thread(finish, child)
        assert received == sent
