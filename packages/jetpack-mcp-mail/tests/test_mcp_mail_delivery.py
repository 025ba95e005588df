"""Delivery: wake-ups vs polling, cursors across restarts, retries and dead letters, retention."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import Message, MessageType
from jetpack.shared.testing import eventually


async def test_wake_up_delivers_without_polling(tmp_path: Path) -> None:
    # A one-minute poll interval: only the datagram wake-up can deliver this fast.
    async with (
        MCPMailAdapter("a", tmp_path, poll_interval_ms=60_000) as a,
        MCPMailAdapter("b", tmp_path, poll_interval_ms=60_000) as b,
    ):
        await asyncio.sleep(0.05)  # b's loop is now parked on its wake-up socket
        got: list[float] = []
        b.subscribe(MessageType.TASK_CREATED, lambda m: got.append(time.perf_counter()))
        for n in range(1, 21):
            sent_at = time.perf_counter()
            await a.publish(MessageType.TASK_CREATED, {})
            assert await eventually(lambda n=n: len(got) == n, timeout=2)  # type: ignore[misc]
        assert got[-1] - sent_at < 0.5


async def test_polling_fallback_when_wake_up_is_lost(tmp_path: Path) -> None:
    async with (
        MCPMailAdapter("a", tmp_path) as a,
        MCPMailAdapter("b", tmp_path, poll_interval_ms=100) as b,
    ):
        got: list[Message] = []
        b.subscribe("*", got.append)
        with sqlite3.connect(a.db_path) as conn:  # b can no longer be woken
            conn.execute("DELETE FROM listeners")
        sent = await a.publish(MessageType.TASK_CREATED, {})
        assert await eventually(lambda: [m.id for m in got] == [sent.id], timeout=2)


async def test_dead_listener_rows_are_forgotten(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as a:
        with sqlite3.connect(a.db_path) as conn:
            conn.execute("INSERT INTO listeners VALUES ('@jetpack-mail/0/gone', 'ghost', 0, 0)")
        await a.publish(MessageType.TASK_CREATED, {})
        with sqlite3.connect(a.db_path) as conn:
            rows = conn.execute("SELECT agent_id FROM listeners").fetchall()
        assert rows == [("a",)]


async def test_restart_resumes_broadcasts_from_the_cursor(tmp_path: Path) -> None:
    async with MCPMailAdapter("sender", tmp_path) as sender:
        got: list[Message] = []
        bus = MCPMailAdapter("reader", tmp_path)
        bus.subscribe("*", got.append)
        async with bus:
            first = await sender.publish(MessageType.TASK_PROGRESS, {"n": 1})
            assert await eventually(lambda: len(got) == 1)
        missed = await sender.publish(MessageType.TASK_PROGRESS, {"n": 2})
        again = MCPMailAdapter("reader", tmp_path)
        again.subscribe("*", got.append)
        async with again:
            assert await eventually(lambda: len(got) == 2)
            await asyncio.sleep(0.1)
        assert [m.id for m in got] == [first.id, missed.id]


async def test_new_agent_does_not_replay_old_broadcasts(tmp_path: Path) -> None:
    async with MCPMailAdapter("sender", tmp_path) as sender:
        await sender.publish(MessageType.TASK_PROGRESS, {"old": True})
        got: list[Message] = []
        fresh = MCPMailAdapter("fresh", tmp_path)
        fresh.subscribe("*", got.append)
        async with fresh:
            new = await sender.publish(MessageType.TASK_PROGRESS, {"old": False})
            assert await eventually(lambda: bool(got))
            await asyncio.sleep(0.1)
        assert [m.id for m in got] == [new.id]


async def test_direct_without_ack_required_is_read_once_handled(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as a, MCPMailAdapter("b", tmp_path) as b:
        got: list[Message] = []
        b.subscribe(MessageType.TASK_ASSIGNED, got.append)
        fyi = await a.send_to("b", MessageType.TASK_ASSIGNED, {}, ack_required=False)
        needs_ack = await a.send_to("b", MessageType.TASK_ASSIGNED, {})
        assert await eventually(lambda: len(got) == 2)

        async def only_needs_ack_left() -> bool:
            return [m.id for m in await b.fetch_inbox()] == [needs_ack.id]

        assert await eventually(only_needs_ack_left)
        assert fyi.id in [m.id for m in await b.fetch_inbox(include_acked=True)]


async def test_failing_handler_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    calls: list[float] = []
    good: list[Message] = []

    def flaky(message: Message) -> None:
        calls.append(time.monotonic())
        raise ValueError("boom")

    options = {"handler_attempts": 3, "handler_retry_base_ms": 50}
    async with MCPMailAdapter("a", tmp_path) as a, MCPMailAdapter("b", tmp_path, **options) as b:
        b.subscribe(MessageType.AGENT_ERROR, flaky)
        b.subscribe(MessageType.AGENT_ERROR, good.append)
        sent = await a.publish(MessageType.AGENT_ERROR, {"n": 1})
        later = await a.publish(MessageType.AGENT_ERROR, {"n": 2})
        # Other handlers and later messages are not held up by the retries.
        assert await eventually(lambda: [m.id for m in good] == [sent.id, later.id], timeout=1)
        assert await eventually(_dead_count(b, 2), timeout=5)
        dead = await b.list_dead_letters()
        assert [d.message.id for d in dead] == [sent.id, later.id]
        assert dead[0].attempts == 3 and dead[0].error == "ValueError: boom"
        assert dead[0].handler.endswith("flaky")
        assert await a.list_dead_letters() == []
        await asyncio.sleep(0.3)
        assert len(calls) == 6, "retries are bounded"
        first_retry_gap = sorted(calls)[2] - sorted(calls)[0]
        assert first_retry_gap >= 0.04, "retries back off"


def _dead_count(bus: MCPMailAdapter, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await bus.list_dead_letters()) == n

    return check


async def test_async_handler_that_recovers_is_not_dead_lettered(tmp_path: Path) -> None:
    seen: list[int] = []

    async def once_flaky(message: Message) -> None:
        seen.append(1)
        if len(seen) == 1:
            raise RuntimeError("first time only")

    async with (
        MCPMailAdapter("a", tmp_path) as a,
        MCPMailAdapter("b", tmp_path, handler_retry_base_ms=20) as b,
    ):
        b.subscribe("*", once_flaky)
        await a.publish(MessageType.TASK_UPDATED, {})
        assert await eventually(lambda: len(seen) == 2)
        await asyncio.sleep(0.1)
        assert await b.list_dead_letters() == []


async def test_retention_cleanup_is_bounded(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path, retention_ms=50, cleanup_batch=3) as a:
        for i in range(5):
            await a.send_to("someone", MessageType.TASK_PROGRESS, {"i": i})
        await asyncio.sleep(0.1)
        assert await a.cleanup() == 3
        assert await a.cleanup() == 2
        assert await a.cleanup() == 0
        fresh = await a.publish(MessageType.TASK_PROGRESS, {})
        with sqlite3.connect(a.db_path) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM messages")]
        assert ids == [fresh.id]
        assert fresh.seq == 6, "seq numbers are never reused"


async def test_retention_keeps_recent_unacked_messages(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as a:
        kept = await a.send_to("offline", MessageType.TASK_ASSIGNED, {})
        assert await a.cleanup() == 0
    async with MCPMailAdapter("offline", tmp_path) as b:
        assert [m.id for m in await b.fetch_inbox()] == [kept.id]


async def test_shutdown_never_hangs_when_a_wake_up_races_the_cancel(tmp_path: Path) -> None:
    # Regression: on Python 3.11 asyncio.wait_for could swallow the shutdown's cancel
    # when a wake-up landed at the same moment, leaving shutdown waiting forever.
    async with MCPMailAdapter("a", tmp_path) as a:
        for _ in range(40):
            b = MCPMailAdapter("b", tmp_path, poll_interval_ms=1)
            await b.initialize()
            await a.publish(MessageType.TASK_PROGRESS, {})
            await asyncio.wait_for(b.shutdown(), timeout=5)
