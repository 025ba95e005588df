"""Argument checking, error texts, the public face, and tool logic on the kit's stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from mcp.client.client import Client

import jetpack.cli.mcp as pkg
from jetpack.cli.mcp import TOOLS, build_server, check_args, error_text
from jetpack.shared import Message, TaskInput, parse
from jetpack.shared.errors import (
    BackendNotInstalledError,
    ConflictError,
    JetpackError,
    LeaseHeldError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from jetpack.shared.registry import Adapters
from jetpack.shared.testing import (
    InMemoryMailBus,
    InMemoryMailHub,
    InMemoryMemoryStore,
    InMemoryTaskStore,
    eventually,
)


def test_all_is_sorted_and_importable() -> None:
    assert pkg.__all__ == sorted(pkg.__all__)
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None


def test_every_schema_is_closed_and_every_property_typed() -> None:
    for spec in TOOLS:
        assert spec.schema["additionalProperties"] is False
        for name, prop in spec.schema["properties"].items():
            assert "type" in prop, (spec.name, name)


SCHEMA = TOOLS[2].schema  # task


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({}, "action"),
        ({"action": None}, "action"),
        ({"action": "claim", "percent": "50"}, "percent"),
        ({"action": "claim", "percent": True}, "percent"),
        ({"action": "claim", "percent": 101}, "percent"),
        ({"action": "claim", "skills": "python"}, "skills"),
        ({"action": "claim", "skills": ["ok", 3]}, "skills[1]"),
        ({"action": "claim", "id": ""}, "id"),
        ({"action": "claim", "id": "x" * 201}, "id"),
        ({"action": "claim", "extra": 1}, "extra"),
    ],
)
def test_check_args_names_the_field(args: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_args(SCHEMA, args)
    assert info.value.field == field


def test_check_args_accepts_good_input() -> None:
    assert check_args(SCHEMA, {"action": "progress", "id": "bd-1", "percent": 5.0}) == {
        "action": "progress",
        "id": "bd-1",
        "percent": 5.0,
    }
    assert check_args(TOOLS[0].schema, None) == {}
    assert check_args(TOOLS[0].schema, {"id": None}) == {"id": None}


def _pydantic_error() -> pydantic.ValidationError:
    try:
        TaskInput.model_validate({"title": ""})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ValidationError("title", "is empty"), "invalid argument: title: is empty"),
        (_pydantic_error(), "invalid argument: title: "),
        (NotFoundError("task", "bd-1"), "not found: task 'bd-1' not found"),
        (ConflictError("cycle"), "conflict: cycle"),
        (
            LeaseHeldError("a.py", "agent-2", datetime(2026, 1, 1, 12, 3, 4, tzinfo=UTC)),
            "conflict: lease on 'a.py' held by agent-2 until 12:03:04",
        ),
        (UnavailableError("down"), "unavailable (retry later): down"),
        (BackendNotInstalledError("memory.local", "jetpack-cass"), "unavailable: no backend"),
        (JetpackError("odd"), "error: odd"),
        (RuntimeError("boom"), "internal error: RuntimeError: boom"),
    ],
)
def test_error_text(exc: BaseException, text: str) -> None:
    assert error_text(exc).startswith(text)


@asynccontextmanager
async def session() -> AsyncIterator[tuple[Client, Adapters]]:
    """A server on the kit's in-memory stores, with an in-process client.

    (A context manager, not a fixture: anyio's cancel scopes must be left in
    the task that entered them.)
    """
    hub = InMemoryMailHub()
    tasks = InMemoryTaskStore(retry_base_ms=60_000)
    adapters = Adapters(tasks, InMemoryMailBus("me", hub=hub), InMemoryMemoryStore())
    async with adapters, Client(build_server(adapters, "me"), mode="legacy") as c:
        yield c, adapters


@asynccontextmanager
async def watched(adapters: Adapters, kind: str) -> AsyncIterator[list[Message]]:
    """The messages of ``kind`` another agent ("watcher") receives while the block runs."""
    seen: list[Message] = []
    hub = adapters.mail._hub  # type: ignore[attr-defined]
    async with InMemoryMailBus("watcher", hub=hub) as watcher:
        watcher.subscribe(kind, seen.append)
        yield seen


async def call(c: Client, tool: str, args: dict[str, Any]) -> tuple[bool, Any]:
    result = await c.call_tool(tool, args)
    text = result.content[0].text  # type: ignore[union-attr]
    return result.is_error, (json.loads(text) if text[:1] in "[{" else text)


async def test_claim_refusals_say_why() -> None:
    async with session() as (c, adapters):
        await _test_claim_refusals_say_why(c, adapters)


async def _test_claim_refusals_say_why(c: Client, adapters: Adapters) -> None:
    tasks = adapters.tasks
    blocked = await tasks.create_task({"title": "b", "blockers": ["needs a design"]})
    done = await tasks.create_task({"title": "d"})
    assert await tasks.claim_task(done.id, "other")
    await tasks.complete_task(done.id, "other")
    retry = await tasks.create_task({"title": "r"})
    assert await tasks.claim_task(retry.id, "other")
    await tasks.fail_task(retry.id, "other", "flaky")

    expected = {
        blocked.id: "blocked: needs a design",
        done.id: "is completed",
        retry.id: "retry back-off until",
    }
    for task_id, reason in expected.items():
        is_error, text = await call(c, "task", {"action": "claim", "id": task_id})
        assert is_error and reason in text, text


async def test_claim_twice_is_already_yours_and_release_works() -> None:
    async with session() as (c, adapters):
        await _test_claim_twice_is_already_yours_and_release_works(c, adapters)


async def _test_claim_twice_is_already_yours_and_release_works(
    c: Client, adapters: Adapters
) -> None:
    task = await adapters.tasks.create_task({"title": "t"})
    assert not (await call(c, "task", {"action": "claim", "id": task.id}))[0]
    is_error, again = await call(c, "task", {"action": "claim", "id": task.id})
    assert not is_error and again["note"] == "already yours"
    assert await call(c, "task", {"action": "release", "id": task.id}) == (
        False,
        {"id": task.id, "released": True},
    )
    is_error, text = await call(c, "task", {"action": "release", "id": task.id})
    assert is_error and "you do not hold" in text
    is_error, text = await call(c, "task", {"action": "progress", "id": task.id})
    assert is_error and "held by nobody, not you" in text


async def test_claim_next_with_nothing_ready() -> None:
    async with session() as (c, _):
        await _test_claim_next_with_nothing_ready(c, _)


async def _test_claim_next_with_nothing_ready(c: Client, _: Adapters) -> None:
    assert await call(c, "task", {"action": "claim"}) == (
        False,
        "no ready task fits; try again later or check `tasks ready`",
    )


async def test_progress_is_announced_to_other_agents() -> None:
    async with session() as (c, adapters):
        await _test_progress_is_announced_to_other_agents(c, adapters)


async def _test_progress_is_announced_to_other_agents(c: Client, adapters: Adapters) -> None:
    async with watched(adapters, "task.progress") as seen:
        task = await adapters.tasks.create_task({"title": "t"})
        await call(c, "task", {"action": "claim", "id": task.id})
        is_error, body = await call(
            c, "task", {"action": "progress", "id": task.id, "percent": 30, "note": "parsing"}
        )
        assert not is_error and body["status"] == "in_progress"
        await eventually(lambda: len(seen) == 1)
        assert seen[0].payload == {"task_id": task.id, "percent": 30, "note": "parsing"}
        assert seen[0].from_agent == "me"


async def test_hand_backs_are_announced_so_idle_agents_wake() -> None:
    async with session() as (c, adapters):
        await _test_hand_backs_are_announced_so_idle_agents_wake(c, adapters)


async def _test_hand_backs_are_announced_so_idle_agents_wake(c: Client, adapters: Adapters) -> None:
    async with watched(adapters, "*") as seen:
        released = await adapters.tasks.create_task({"title": "r"})
        await call(c, "task", {"action": "claim", "id": released.id})
        await call(c, "task", {"action": "release", "id": released.id})
        flaky = await adapters.tasks.create_task({"title": "f"})
        await call(c, "task", {"action": "claim", "id": flaky.id})
        is_error, body = await call(c, "task", {"action": "fail", "id": flaky.id, "error": "x"})
        assert not is_error and body["status"] == "ready" and body["retries"] == 1

        def kinds() -> list[tuple[str, str]]:
            return [(m.type.value, m.payload.get("task_id")) for m in seen]

        await eventually(lambda: len(kinds()) >= 4)
        assert ("task.available", released.id) in kinds()
        assert ("task.retry_scheduled", flaky.id) in kinds()
        assert ("task.failed", flaky.id) not in kinds()


async def test_task_new_validation_comes_from_the_store() -> None:
    async with session() as (c, adapters):
        await _test_task_new_validation_comes_from_the_store(c, adapters)


async def _test_task_new_validation_comes_from_the_store(c: Client, adapters: Adapters) -> None:
    is_error, text = await call(c, "task_new", {"title": "x", "deps": ["bd-missing"]})
    assert is_error and text.startswith("invalid argument: ") and "bd-missing" in text
    assert await adapters.tasks.list_tasks() == []
    is_error, body = await call(c, "task_new", {"title": "y", "estimate_min": 30})
    assert not is_error
    stored = await adapters.tasks.get_task(body["id"])
    assert stored is not None and stored.estimated_minutes == 30
    assert stored.metadata == {"created_by": "me"}
    assert parse(TaskInput, {"title": "ok"}).title == "ok"
