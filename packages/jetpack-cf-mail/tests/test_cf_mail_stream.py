"""The message stream on a real Worker: cut connections, replays, offline mail, many clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import connect

from jetpack.cf_mail import CloudflareMailBus
from jetpack.shared import Message, MessageType
from jetpack.shared.testing import eventually
from jetpack.shared.testing.edge import EdgeProject

FAST = {"reconnect_base_ms": 50, "reconnect_max_ms": 500}
REQUEST = MessageType.COORDINATION_REQUEST


def recording(kind: MessageType, into: list[int]) -> dict[str, Callable[[Message], Any]]:
    """Subscriptions that append each message's payload ``i`` to ``into``."""
    return {kind: lambda message: into.append(message.payload["i"])}


@contextlib.asynccontextmanager
async def bus(
    url: str, token: str, agent: str, subscribe: dict[str, Callable[[Message], Any]] | None = None
) -> AsyncIterator[CloudflareMailBus]:
    """A bus, subscribed before it opens (so the backlog reaches the handlers)."""
    made = CloudflareMailBus(agent, url, token, **FAST)
    for kind, handler in (subscribe or {}).items():
        made.subscribe(kind, handler)
    async with made:
        yield made


async def test_a_cut_connection_resumes_with_no_loss_and_no_duplicate(
    edge_project: EdgeProject, cutter: Any
) -> None:
    """The subscriber's (and the publisher's) connection is cut mid-stream, several times."""
    got: list[int] = []
    direct: list[int] = []
    p = edge_project

    def on_progress(message: Message) -> None:
        got.append(message.payload["i"])

    def on_request(message: Message) -> None:
        direct.append(message.payload["i"])

    handlers = {
        MessageType.TASK_PROGRESS: on_progress,
        MessageType.COORDINATION_REQUEST: on_request,
    }
    async with (
        bus(cutter.url, p.token, "sub", handlers) as sub,
        bus(cutter.url, p.token, "pub") as pub,
    ):
        for i in range(300):
            await pub.publish(MessageType.TASK_PROGRESS, {"i": i})
            if i % 10 == 0:
                await pub.send_to(
                    "sub", MessageType.COORDINATION_REQUEST, {"i": i}, ack_required=False
                )
            if i in (40, 120, 200, 260):
                cutter.cut()  # both buses lose their sockets (and HTTP connections)
            await asyncio.sleep(0.002)
        assert await eventually(lambda: len(got) >= 300 and len(direct) >= 30, timeout=60)
        await asyncio.sleep(0.5)
        assert got == list(range(300)), "lost, duplicated or reordered"
        assert direct == list(range(0, 300, 10))
        assert sub._socket.connections >= 5 and pub._socket.connections >= 5
        # each direct message handled (no ack asked) is marked read, even across the cuts

        async def all_read() -> bool:
            return await sub.fetch_inbox() == []

        assert await eventually(all_read, timeout=10)


async def test_publishes_while_down_are_queued_and_sent_once(
    edge_project: EdgeProject, cutter: Any
) -> None:
    got: list[int] = []
    p = edge_project
    async with (
        bus(
            p.url, p.token, "sub", {MessageType.TASK_UPDATED: lambda m: got.append(m.payload["i"])}
        ),
        bus(cutter.url, p.token, "pub") as pub,
    ):
        cutter.down()
        assert await eventually(lambda: not pub.connected)
        sent = [await pub.publish(MessageType.TASK_UPDATED, {"i": i}) for i in range(5)]
        assert all(m.seq is None for m in sent), "published while down: queued, no seq yet"
        assert pub.queued == 5
        await asyncio.sleep(0.3)
        assert got == []
        cutter.up()
        assert await eventually(lambda: len(got) >= 5, timeout=30)
        after = await pub.publish(MessageType.TASK_UPDATED, {"i": 5})
        assert after.seq is not None and pub.queued == 0
        assert await eventually(lambda: len(got) >= 6)
        await asyncio.sleep(0.3)
        assert got == list(range(6))


async def test_direct_mail_to_an_offline_agent_is_delivered_once_when_it_connects(
    edge_project: EdgeProject,
) -> None:
    p = edge_project
    seen: list[str] = []
    async with bus(p.url, p.token, "sender") as sender:
        quiet = await sender.send_to(
            "late", MessageType.COORDINATION_REQUEST, {"n": 1}, ack_required=False
        )
        asked = await sender.send_to("late", MessageType.COORDINATION_REQUEST, {"n": 2})

    async def on_request(message: Message) -> None:
        seen.append(message.id)
        if message.ack_required:
            assert await late.acknowledge(message.id)

    late = CloudflareMailBus("late", p.url, p.token, **FAST)
    late.subscribe(MessageType.COORDINATION_REQUEST, on_request)
    async with late:
        assert await eventually(lambda: len(seen) >= 2)
        assert seen == [quiet.id, asked.id]
        late._socket.drop()  # reconnects with since=: nothing again
        assert await eventually(lambda: late._socket.connections >= 2 and late.connected)
        await asyncio.sleep(0.5)
        assert seen == [quiet.id, asked.id]
    async with bus(p.url, p.token, "late", {MessageType.COORDINATION_REQUEST: on_request}) as again:
        await asyncio.sleep(0.5)
        assert seen == [quiet.id, asked.id], "delivered again to a new bus of the agent"
        assert await again.fetch_inbox() == []
        assert [m.id for m in await again.fetch_inbox(include_acked=True)] == [quiet.id, asked.id]


async def test_a_replay_longer_than_a_page_arrives_whole_and_in_order(
    edge_project: EdgeProject, cutter: Any
) -> None:
    """1,200 missed broadcasts (pages of 1,000) while more are published during the catch-up."""
    got: list[int] = []
    p = edge_project
    async with (
        bus(
            cutter.url,
            p.token,
            "sub",
            {MessageType.TASK_PROGRESS: lambda m: got.append(m.payload["i"])},
        ) as sub,
        bus(p.url, p.token, "pub") as pub,
    ):
        cutter.down()
        assert await eventually(lambda: not sub.connected)
        for start in range(0, 1200, 100):  # pipelined on one socket: sent (and numbered) in order
            await asyncio.gather(
                *(
                    pub.publish(MessageType.TASK_PROGRESS, {"i": i})
                    for i in range(start, start + 100)
                )
            )
        cutter.up()
        for i in range(1200, 1260):
            await pub.publish(MessageType.TASK_PROGRESS, {"i": i})
        assert await eventually(lambda: len(got) >= 1260, timeout=90)
        await asyncio.sleep(0.3)
        assert got == list(range(1260))


async def test_a_failing_handler_is_retried_then_dead_lettered(edge_project: EdgeProject) -> None:
    p = edge_project
    good: list[int] = []
    calls: list[int] = []

    def bad(message: Message) -> None:
        calls.append(message.payload["i"])
        raise RuntimeError("handler bug")

    made = CloudflareMailBus("sub", p.url, p.token, handler_attempts=3, handler_retry_base_ms=50)
    made.subscribe(MessageType.AGENT_STATUS, bad)
    made.subscribe(MessageType.AGENT_STATUS, lambda m: good.append(m.payload["i"]))
    async with made, bus(p.url, p.token, "pub") as pub:
        for i in range(3):
            await pub.publish(MessageType.AGENT_STATUS, {"i": i})
        assert await eventually(lambda: len(good) == 3)
        assert await eventually(lambda: len(calls) == 9, timeout=30)
        letters = []
        for _ in range(50):
            letters = await made.list_dead_letters()
            if len(letters) == 3:
                break
            await asyncio.sleep(0.1)
        assert sorted(d.message.payload["i"] for d in letters) == [0, 1, 2]
        assert all(d.attempts == 3 and "handler bug" in d.error for d in letters)
        assert letters[0].handler.endswith("bad")


async def test_200_idle_clients_a_broadcast_reaches_exactly_its_subscribers(
    edge_project: EdgeProject,
) -> None:
    """Sockets subscribed at connect (tags) and after (subscribe frames): the mailbox sends
    a broadcast to the subscribers of its type and of '*' only (counted at the socket)."""
    p = edge_project
    kinds = [MessageType.TASK_CREATED, MessageType.TASK_FAILED, "*", None]
    frames: dict[str, list[str]] = {}
    handled: dict[str, list[str]] = {}
    buses: list[CloudflareMailBus] = []

    def counting(agent: str, original: Callable[[Message], None]) -> Callable[[Message], None]:
        def count(message: Message) -> None:
            frames[agent].append(message.type.value)
            original(message)

        return count

    try:
        for i in range(200):
            agent = f"idle-{i:03d}"
            frames[agent], handled[agent] = [], []
            made = CloudflareMailBus(agent, p.url, p.token)
            made._socket._on_message = counting(agent, made._socket._on_message)
            kind = kinds[i % 4]
            if kind is not None and i % 8 < 4:  # half subscribe before connecting
                made.subscribe(kind, lambda m, a=agent: handled[a].append(m.type.value))
            buses.append(made)
        for start in range(0, 200, 25):
            await asyncio.gather(*(made.initialize() for made in buses[start : start + 25]))
        for i, made in enumerate(buses):
            kind = kinds[i % 4]
            if kind is not None and i % 8 >= 4:  # the other half after
                agent = made.agent_id
                made.subscribe(kind, lambda m, a=agent: handled[a].append(m.type.value))
        await asyncio.sleep(1.0)  # idle
        async with bus(p.url, p.token, "pub") as pub:
            await pub.publish(MessageType.TASK_CREATED, {})
            await pub.publish(MessageType.TASK_FAILED, {})
        want = {
            f"idle-{i:03d}": {
                MessageType.TASK_CREATED: ["task.created"],
                MessageType.TASK_FAILED: ["task.failed"],
                "*": ["task.created", "task.failed"],
                None: [],
            }[kinds[i % 4]]
            for i in range(200)
        }
        assert await eventually(lambda: handled == want, timeout=60)
        await asyncio.sleep(0.5)
        assert handled == want
        assert frames == want, "the mailbox sent a broadcast to a socket not subscribed to it"
    finally:
        await asyncio.gather(*(made.shutdown() for made in buses))


async def test_a_text_ping_is_answered_without_the_object(edge_project: EdgeProject) -> None:
    """Both objects answer `ping` with `pong` (the hibernation API's auto-response)."""
    p = edge_project
    headers = {"Authorization": f"Bearer {p.token}"}
    for path in ("/api/mail/subscribe", "/api/mail/lease/socket"):
        url = f"{p.url.replace('http', 'ws', 1)}{path}?agent_id=pinger"
        async with connect(url, additional_headers=headers) as ws:
            await ws.send("ping")
            answers = [await ws.recv() for _ in range(3 if path.endswith("subscribe") else 1)]
            assert "pong" in answers, answers


async def test_subscriptions_made_while_disconnected_take_effect_on_reconnect(
    edge_project: EdgeProject, cutter: Any
) -> None:
    """A type subscribed while the socket is down: its broadcasts since the cut arrive."""
    p = edge_project
    got: list[int] = []
    async with (
        bus(cutter.url, p.token, "sub") as sub,
        bus(p.url, p.token, "pub") as pub,
    ):
        cutter.down()
        assert await eventually(lambda: not sub.connected)
        sub.subscribe(MessageType.FILE_LOCK, lambda m: got.append(m.payload["i"]))
        for i in range(3):
            await pub.publish(MessageType.FILE_LOCK, {"i": i})
        cutter.up()
        assert await eventually(lambda: got == [0, 1, 2], timeout=30), got
        await pub.publish(MessageType.FILE_LOCK, {"i": 3})
        assert await eventually(lambda: got == [0, 1, 2, 3])
