"""Outages are said once (down, back), and a report is sent again until the store takes it."""

from __future__ import annotations

import asyncio

import pytest

from jetpack.cli._network import Reachability
from jetpack.shared import repeat_scope
from jetpack.shared.errors import ConflictError, UnavailableError


async def test_an_outage_is_one_event_down_and_one_back_whatever_the_retries() -> None:
    said: list[tuple[str, str]] = []
    network = Reachability(lambda kind, text: said.append((kind, text)))

    async def down() -> None:
        raise UnavailableError("the Worker at http://x did not answer")

    async def up() -> str:
        return "ok"

    async def refused() -> None:
        raise ConflictError("not the holder")

    for _ in range(5):
        with pytest.raises(UnavailableError):
            await network.call("tasks", down())
    assert not network.is_up("tasks") and network.is_up("mail")
    waiting = asyncio.create_task(network.wait_up("tasks"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    with pytest.raises(ConflictError):  # a refusal is an answer: the store is back
        await network.call("tasks", refused())
    await asyncio.wait_for(waiting, 1)
    assert await network.call("tasks", up()) == "ok"
    assert [kind for kind, _ in said] == ["offline", "online"]
    assert "task store does not answer" in said[0][1]
    assert network.outages == {"tasks": 1}


async def test_a_report_is_repeated_in_one_scope_until_it_gets_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("jetpack.cli._network.REPORT_BACKOFF_BASE_S", 0.01)
    said: list[str] = []
    network = Reachability(lambda kind, text: said.append(kind))
    scopes: list[str | None] = []

    async def complete() -> str:
        scopes.append(repeat_scope())
        if len(scopes) < 4:
            raise UnavailableError("no answer")
        return "completed"

    assert await network.persist("tasks", "agent-1:t1:abc:complete", complete) == "completed"
    assert scopes == ["agent-1:t1:abc:complete"] * 4  # every try: the same idempotency scope
    assert said == ["offline", "online"]
    assert repeat_scope() is None


async def test_the_probe_notices_the_store_is_back() -> None:
    network = Reachability(lambda kind, text: None)
    answers = iter([False, False, True])

    async def read() -> None:
        if not next(answers):
            raise UnavailableError("no answer")

    with pytest.raises(UnavailableError):
        await network.call("tasks", read())
    network.probe("tasks", read)
    await asyncio.wait_for(network.wait_up("tasks"), 10)
    await network.close()
