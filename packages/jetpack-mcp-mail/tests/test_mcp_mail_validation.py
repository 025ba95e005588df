"""Bad input raises ValidationError naming the field, and nothing is written."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import MessageType
from jetpack.shared.errors import UnavailableError, ValidationError


@pytest.mark.parametrize(
    ("args", "options", "field"),
    [
        (("",), {}, "agent_id"),
        (("   ",), {}, "agent_id"),
        (("has space",), {}, "agent_id"),
        ((None,), {}, "agent_id"),
        (("a", ""), {}, "mail_dir"),
        (("a",), {"presence_window_ms": 0}, "presence_window_ms"),
        (("a",), {"retention_ms": -1}, "retention_ms"),
        (("a",), {"poll_interval_ms": True}, "poll_interval_ms"),
        (("a",), {"handler_attempts": 1.5}, "handler_attempts"),
        (("a",), {"no_such_option": 1}, "no_such_option"),
    ],
)
def test_constructor_refuses_bad_options(
    args: tuple[Any, ...], options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        MCPMailAdapter(*args, **options)
    assert info.value.field == field


def _row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("messages", "leases", "presence", "cursors", "dead_letters")
        }


async def test_bad_calls_name_the_field_and_write_nothing(tmp_path: Path) -> None:
    async with MCPMailAdapter("agent-a", tmp_path) as a:
        before = _row_counts(a.db_path)
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("type", lambda: a.publish("nope", {})),
            ("type", lambda: a.send_to("b", "task.nope", {})),
            ("payload", lambda: a.publish(MessageType.TASK_CREATED, ["not", "an", "object"])),  # type: ignore[arg-type]
            ("payload", lambda: a.publish(MessageType.TASK_CREATED, {"x": float("nan")})),
            ("payload", lambda: a.publish(MessageType.TASK_CREATED, {"x": object()})),
            ("payload", lambda: a.send_to("b", MessageType.TASK_CREATED, {"x": "y" * 300_000})),
            (
                "correlation_id",
                lambda: a.publish(MessageType.TASK_CREATED, {}, correlation_id="c" * 201),
            ),
            ("ack_required", lambda: a.publish(MessageType.TASK_CREATED, {}, ack_required="yes")),  # type: ignore[arg-type]
            ("agent_id", lambda: a.send_to("", MessageType.TASK_CREATED, {})),
            ("agent_id", lambda: a.send_to("../etc", MessageType.TASK_CREATED, {})),
            ("message_id", lambda: a.acknowledge("")),
            ("limit", lambda: a.fetch_inbox(limit=0)),
            ("limit", lambda: a.list_dead_letters(limit=10**9)),
            ("ttl_ms", lambda: a.acquire_lease("src/x.py", 0)),
            ("ttl_ms", lambda: a.acquire_lease("src/x.py", 1.5)),  # type: ignore[arg-type]
            ("ttl_ms", lambda: a.renew_lease("src/x.py", -1)),
            ("ttl_ms", lambda: a.acquire_lease("src/x.py", 10**30)),
            ("exclusive", lambda: a.acquire_lease("src/x.py", 100, exclusive="no")),  # type: ignore[arg-type]
            ("path", lambda: a.acquire_lease("../../x", 100)),
            ("path", lambda: a.acquire_lease("src/../../x", 100)),
            ("path", lambda: a.acquire_lease("/abs/x", 100)),
            ("path", lambda: a.acquire_lease("C:/x", 100)),
            ("path", lambda: a.acquire_lease("a\x00b", 100)),
            ("path", lambda: a.release_lease("")),
            ("path", lambda: a.is_leased("../x")),
            ("status", lambda: a.send_heartbeat("sleepy")),  # type: ignore[arg-type]
            ("info", lambda: a.send_heartbeat(info={"x": {1, 2}})),
            ("info", lambda: a.send_heartbeat(info={"x": "y" * 70_000})),
        ]
        for field, call in cases:
            with pytest.raises(ValidationError) as info:
                await call()
            assert info.value.field == field, (field, info.value)
        with pytest.raises(ValidationError) as info:
            a.subscribe("task.nope", print)
        assert info.value.field == "type"
        with pytest.raises(ValidationError) as info:
            a.subscribe("*", "not callable")  # type: ignore[arg-type]
        assert info.value.field == "handler"
        assert _row_counts(a.db_path) == before


async def test_closed_bus_is_unavailable(tmp_path: Path) -> None:
    bus = MCPMailAdapter("a", tmp_path)
    with pytest.raises(UnavailableError):
        await bus.publish(MessageType.TASK_CREATED, {})
    async with bus:
        pass
    with pytest.raises(UnavailableError):
        await bus.acquire_lease("x", 100)
    await bus.shutdown()  # idempotent


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as bus:
        db = bus.db_path
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(Exception, match="newer"):
        await MCPMailAdapter("a", tmp_path).initialize()
