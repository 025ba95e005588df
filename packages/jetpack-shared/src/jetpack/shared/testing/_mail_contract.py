"""MailBusContract: the behaviour every MailBus keeps.

Subclass it and supply ``bus_spec``; the kit builds one bus per agent with
``bus_spec.build(agent_id, presence_window_ms=...)``::

    class TestMailContract(MailBusContract):
        multiprocess = True

        @pytest.fixture
        def bus_spec(self, tmp_path):
            return StoreSpec("jetpack.mcp_mail:MCPMailAdapter", {"mail_dir": str(tmp_path)})
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from jetpack.shared import MAX_JSON_DEPTH, AgentStatus, MailBus, Message, MessageType, utcnow
from jetpack.shared.errors import LeaseHeldError, ValidationError
from jetpack.shared.rules import MAX_TTL_MS, paths_overlap
from jetpack.shared.testing._children import run_children
from jetpack.shared.testing._guard import KitContract
from jetpack.shared.testing._helpers import eventually
from jetpack.shared.testing._procs import lease_worker
from jetpack.shared.testing._spec import StoreSpec
from jetpack.shared.testing._task_contract import nested

__all__ = ["MailBusContract"]

WINDOW_MS = 500
OpenBus = Callable[[str], Awaitable[MailBus]]


class MailBusContract(KitContract, kit=True):
    """Conformance tests for :class:`jetpack.shared.MailBus` backends.

    Set ``multiprocess = True`` when buses in different OS processes share
    state; lease races then run in 4 processes too.

    What a failure usually means: "Troubleshooting" in jetpack-shared's README.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]
    multiprocess_tests: ClassVar[tuple[str, ...]] = ("test_lease_race_across_processes",)

    @pytest.fixture
    def bus_spec(self, tmp_path: Any) -> StoreSpec:
        """Abstract: a StoreSpec whose ``build(agent_id, **options)`` makes a bus on fresh state."""
        raise NotImplementedError("subclass MailBusContract and override the bus_spec fixture")

    @pytest_asyncio.fixture
    async def open_bus(self, bus_spec: StoreSpec) -> AsyncIterator[OpenBus]:
        """Open buses for agents on the same state; all are shut down after the test."""
        async with AsyncExitStack() as stack:

            async def open_one(agent_id: str) -> MailBus:
                bus = bus_spec.build(agent_id, presence_window_ms=WINDOW_MS)
                opened: MailBus = await stack.enter_async_context(bus)
                return opened

            yield open_one

    async def test_unknown_option_is_refused_by_name(self, bus_spec: StoreSpec) -> None:
        """An option the bus does not take is a ValidationError naming it (never ignored)."""
        with pytest.raises(ValidationError) as info:
            bus_spec.build("agent-1", no_such_option=1)
        assert info.value.field == "no_such_option"

    # -- publish / subscribe -----------------------------------------------

    async def test_publish_reaches_type_and_wildcard_subscribers(self, open_bus: OpenBus) -> None:
        """A broadcast reaches subscribers of its type and of '*' on other buses."""
        a, b, c = await open_bus("agent-a"), await open_bus("agent-b"), await open_bus("agent-c")
        typed: list[Message] = []
        wild: list[Message] = []
        b.subscribe(MessageType.TASK_CREATED, typed.append)
        c.subscribe("*", wild.append)
        sent = await a.publish(MessageType.TASK_CREATED, {"task_id": "bd-1"})
        assert sent.from_agent == "agent-a" and sent.to_agent is None
        assert await eventually(lambda: bool(typed) and any(m.id == sent.id for m in wild))
        assert typed[0].id == sent.id and typed[0].payload == {"task_id": "bd-1"}

    async def test_other_types_are_not_delivered(self, open_bus: OpenBus) -> None:
        """A subscriber of one type does not get other types."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        got: list[Message] = []
        b.subscribe(MessageType.TASK_FAILED, got.append)
        await a.publish(MessageType.TASK_COMPLETED, {})
        marker = await a.publish(MessageType.TASK_FAILED, {"n": 1})
        assert await eventually(lambda: any(m.id == marker.id for m in got))
        assert [m.type for m in got] == [MessageType.TASK_FAILED]

    async def test_unsubscribe_stops_delivery(self, open_bus: OpenBus) -> None:
        """After unsubscribe the handler is not called again."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        got: list[Message] = []
        probe: list[Message] = []
        b.subscribe(MessageType.TASK_UPDATED, got.append)
        b.subscribe(MessageType.TASK_UPDATED, probe.append)
        await a.publish(MessageType.TASK_UPDATED, {"n": 1})
        assert await eventually(lambda: len(got) == 1)
        b.unsubscribe(MessageType.TASK_UPDATED, got.append)
        await a.publish(MessageType.TASK_UPDATED, {"n": 2})
        assert await eventually(lambda: len(probe) == 2)
        assert len(got) == 1

    async def test_order_per_sender_is_preserved(self, open_bus: OpenBus) -> None:
        """Messages from one sender arrive in the order sent, with increasing seq."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        got: list[Message] = []
        b.subscribe(MessageType.TASK_PROGRESS, got.append)
        for i in range(50):
            await a.publish(MessageType.TASK_PROGRESS, {"i": i})
        assert await eventually(lambda: len(got) >= 50)
        assert [m.payload["i"] for m in got] == list(range(50))
        seqs = [m.seq for m in got if m.seq is not None]
        assert len(seqs) == 50 and seqs == sorted(seqs)

    async def test_failing_handler_does_not_wedge_the_bus(self, open_bus: OpenBus) -> None:
        """A handler that raises neither stops other handlers nor later messages."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        good: list[Message] = []

        def bad(message: Message) -> None:
            raise RuntimeError("handler bug")

        b.subscribe(MessageType.AGENT_STATUS, bad)
        b.subscribe(MessageType.AGENT_STATUS, good.append)
        await a.publish(MessageType.AGENT_STATUS, {"n": 1})
        await a.publish(MessageType.AGENT_STATUS, {"n": 2})
        assert await eventually(lambda: len(good) == 2)

    # -- direct messages ---------------------------------------------------

    async def test_direct_message_waits_for_offline_agent(self, open_bus: OpenBus) -> None:
        """send_to an agent that is not running: it finds the message when it starts."""
        a = await open_bus("agent-a")
        sent = await a.send_to("agent-late", MessageType.COORDINATION_REQUEST, {"q": "status?"})
        assert sent.to_agent == "agent-late"
        late = await open_bus("agent-late")
        inbox = await late.fetch_inbox()
        assert [m.id for m in inbox] == [sent.id]
        assert inbox[0].payload == {"q": "status?"}

    async def test_acknowledged_messages_leave_the_inbox(self, open_bus: OpenBus) -> None:
        """After acknowledge the message is no longer in fetch_inbox (but is with include_acked)."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        m1 = await a.send_to("agent-b", MessageType.COORDINATION_REQUEST, {"n": 1})
        m2 = await a.send_to("agent-b", MessageType.COORDINATION_REQUEST, {"n": 2})
        assert await b.acknowledge(m1.id) is True
        assert [m.id for m in await b.fetch_inbox()] == [m2.id]
        assert [m.id for m in await b.fetch_inbox(include_acked=True)] == [m1.id, m2.id]

    async def test_only_the_recipient_can_acknowledge(self, open_bus: OpenBus) -> None:
        """Acknowledge by another agent, or of an unknown id, returns False."""
        a, b, c = await open_bus("agent-a"), await open_bus("agent-b"), await open_bus("agent-c")
        sent = await a.send_to("agent-b", MessageType.COORDINATION_REQUEST, {})
        assert await c.acknowledge(sent.id) is False
        assert await b.acknowledge("msg-unknown") is False
        assert [m.id for m in await b.fetch_inbox()] == [sent.id]

    async def test_direct_message_reaches_live_handler(self, open_bus: OpenBus) -> None:
        """A direct message to a running agent also reaches its subscribers of that type."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        got: list[Message] = []
        b.subscribe(MessageType.COORDINATION_RESPONSE, got.append)
        sent = await a.send_to("agent-b", MessageType.COORDINATION_RESPONSE, {"ok": True})
        assert await eventually(lambda: any(m.id == sent.id for m in got))

    # -- leases ------------------------------------------------------------

    async def test_exclusive_lease_excludes_overlaps(self, open_bus: OpenBus) -> None:
        """An exclusive lease blocks the same path, covering globs and shared leases."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        assert await a.acquire_lease("src/auth/session.py", 10_000) is True
        assert await b.acquire_lease("src/auth/session.py", 10_000) is False
        assert await b.acquire_lease("src/auth/**", 10_000) is False
        assert await b.acquire_lease("./src/auth/session.py", 10_000, exclusive=False) is False
        assert await b.acquire_lease("src/other.py", 10_000) is True
        assert await a.release_lease("src/auth/session.py") is True
        assert await b.acquire_lease("src/auth/**", 10_000) is True

    async def test_shared_leases_coexist_but_exclude_writers(self, open_bus: OpenBus) -> None:
        """Shared leases on one path coexist; an exclusive one is refused meanwhile."""
        a, b, c = await open_bus("agent-a"), await open_bus("agent-b"), await open_bus("agent-c")
        assert await a.acquire_lease("docs/*.md", 10_000, exclusive=False) is True
        assert await b.acquire_lease("docs/readme.md", 10_000, exclusive=False) is True
        assert await c.acquire_lease("docs/readme.md", 10_000, exclusive=True) is False

    async def test_release_by_holder_only(self, open_bus: OpenBus) -> None:
        """release_lease by another agent returns False and the lease stays."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        await a.acquire_lease("src/x.py", 10_000)
        assert await b.release_lease("src/x.py") is False
        status = await b.is_leased("src/x.py")
        assert status.is_leased and status.agent_id == "agent-a"

    async def test_lease_expires_at_ttl(self, open_bus: OpenBus) -> None:
        """A lease not renewed lapses at its TTL and another agent can take the path."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        assert await a.acquire_lease("src/x.py", 300) is True
        assert await b.acquire_lease("src/x.py", 300) is False
        await asyncio.sleep(0.4)
        assert (await b.is_leased("src/x.py")).is_leased is False
        assert await b.acquire_lease("src/x.py", 300) is True

    async def test_renew_lease_extends_it(self, open_bus: OpenBus) -> None:
        """renew_lease by the holder pushes expiry out; by others it returns False."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        await a.acquire_lease("src/x.py", 300)
        assert await b.renew_lease("src/x.py", 5_000) is False
        await asyncio.sleep(0.15)
        assert await a.renew_lease("src/x.py", 5_000) is True
        await asyncio.sleep(0.3)
        assert await b.acquire_lease("src/x.py", 300) is False

    async def test_is_leased_reports_holder_and_fencing(self, open_bus: OpenBus) -> None:
        """is_leased names holder, kind, expiry and a fencing token that grows with each grant."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        await a.acquire_lease("src/**", 10_000)
        first = await b.is_leased("src/deep/file.py")
        assert first.is_leased and first.agent_id == "agent-a" and first.exclusive is True
        assert first.expires_at is not None and first.pattern == "src/**"
        await a.release_lease("src/**")
        await b.acquire_lease("src/deep/file.py", 10_000)
        second = await a.is_leased("src/deep/file.py")
        assert second.fencing_token is not None and first.fencing_token is not None
        assert second.fencing_token > first.fencing_token
        leases = await a.list_leases()
        assert [(le.path, le.agent_id) for le in leases] == [("src/deep/file.py", "agent-b")]

    async def test_grant_lease_returns_the_grant_or_names_the_holder(
        self, open_bus: OpenBus
    ) -> None:
        """grant_lease returns the Lease (holder, token); a conflict raises LeaseHeldError."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        lease = await a.grant_lease("./src/api/*.py", 10_000)
        assert (lease.path, lease.agent_id, lease.exclusive) == ("src/api/*.py", "agent-a", True)
        with pytest.raises(LeaseHeldError) as info:
            await b.grant_lease("src/api/routes.py", 10_000, exclusive=False)
        assert info.value.holder == "agent-a" and info.value.pattern == "src/api/*.py"
        assert info.value.expires_at == lease.expires_at
        again = await a.grant_lease("src/api/*.py", 10_000)
        assert again.fencing_token > lease.fencing_token

    async def test_concurrent_exclusive_acquires_one_winner(self, open_bus: OpenBus) -> None:
        """20 agents acquiring one path at once: exactly one gets it."""
        buses = [await open_bus(f"agent-{i}") for i in range(20)]
        results = await asyncio.gather(*(bus.acquire_lease("src/hot.py", 10_000) for bus in buses))
        assert sum(results) == 1

    async def test_lease_race_across_processes(
        self, open_bus: OpenBus, bus_spec: StoreSpec
    ) -> None:
        """4 OS processes cycling exclusive leases over paths and globs: no overlap ever."""
        await open_bus("agent-init")
        paths = ["src/a.py", "src/b.py", "src/c.py", "src/**", "docs/*.md", "docs/x.md"]
        results = await asyncio.to_thread(
            run_children, lease_worker, [(bus_spec, f"proc-{i}", paths, 150) for i in range(4)]
        )
        grants = [(i, *g) for i, found in enumerate(results) for g in found]
        assert len(grants) > 100, "too few grants to prove anything"
        violations = [
            (x, y)
            for x, y in itertools.combinations(grants, 2)
            if x[0] != y[0] and paths_overlap(x[1], y[1]) and x[3] < y[4] and y[3] < x[4]
        ]
        assert violations == []

    # -- presence ----------------------------------------------------------

    async def test_heartbeat_presence_and_offline(self, open_bus: OpenBus) -> None:
        """send_heartbeat makes an agent listed online; silent past the window it is offline."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        await a.send_heartbeat(AgentStatus.BUSY, {"task": "bd-1"})
        agents = {p.agent_id: p for p in await b.list_agents()}
        assert agents["agent-a"].online and agents["agent-a"].status is AgentStatus.BUSY
        await asyncio.sleep(WINDOW_MS / 1000 + 0.2)
        assert "agent-a" not in {p.agent_id for p in await b.list_agents()}
        offline = {p.agent_id: p for p in await b.list_agents(include_offline=True)}
        assert offline["agent-a"].online is False

    async def test_shutdown_releases_only_the_leases_of_this_bus(
        self, bus_spec: StoreSpec, open_bus: OpenBus
    ) -> None:
        """A bus's shutdown releases the leases acquired through it, and only those.

        Leases the same agent holds through another bus (its orchestrator loop,
        another MCP server) stay until released or expired. A path re-acquired
        through the other bus belongs to that bus from then on.
        """
        b = await open_bus("agent-b")
        loop = await open_bus("agent-a")
        assert await loop.acquire_lease("src/loop.py", 60_000)
        assert await loop.acquire_lease("src/shared.py", 60_000)
        async with bus_spec.build("agent-a", presence_window_ms=WINDOW_MS) as mcp:
            assert await mcp.acquire_lease("src/mcp.py", 60_000)
            assert await mcp.acquire_lease("src/shared.py", 60_000)  # now granted through mcp
            assert await mcp.acquire_lease("src/handed.py", 60_000)
            assert await loop.acquire_lease("src/handed.py", 60_000)  # back through loop
        assert (await b.is_leased("src/mcp.py")).is_leased is False
        assert (await b.is_leased("src/shared.py")).is_leased is False
        for path in ("src/loop.py", "src/handed.py"):
            status = await b.is_leased(path)
            assert status.is_leased and status.agent_id == "agent-a", path
        assert await loop.release_lease("src/loop.py") is True

    # -- the seed's publish(message) / sendTo(agentId, message) ---------------

    async def test_publish_and_send_to_take_a_message(self, open_bus: OpenBus) -> None:
        """publish(Message) and send_to(agent, Message) send its type, payload and flags."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        got: list[Message] = []
        b.subscribe("*", got.append)
        draft = Message(
            id="msg-draft",
            type=MessageType.TASK_PROGRESS,
            from_agent="agent-a",
            payload={"pct": 50},
            timestamp=utcnow(),
            correlation_id="run-1",
        )
        sent = await a.publish(draft)
        assert (sent.type, sent.payload, sent.correlation_id) == (
            MessageType.TASK_PROGRESS,
            {"pct": 50},
            "run-1",
        )
        assert sent.from_agent == "agent-a" and sent.to_agent is None and not sent.ack_required
        request = draft.model_copy(
            update={"type": MessageType.COORDINATION_REQUEST, "ack_required": True}
        )
        direct = await a.send_to("agent-b", request)
        assert direct.to_agent == "agent-b" and direct.type is MessageType.COORDINATION_REQUEST
        assert direct.ack_required and direct.payload == {"pct": 50}
        assert await eventually(lambda: {m.id for m in got} >= {sent.id, direct.id})
        assert [m.id for m in await b.fetch_inbox()] == [direct.id]
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("from_agent", lambda: a.publish(draft.model_copy(update={"from_agent": "agent-x"}))),
            ("to_agent", lambda: a.publish(draft.model_copy(update={"to_agent": "agent-b"}))),
            (
                "to_agent",
                lambda: a.send_to("agent-b", draft.model_copy(update={"to_agent": "agent-c"})),
            ),
            ("payload", lambda: a.publish(draft, {"also": 1})),
            ("from_agent", lambda: b.send_to("agent-a", request)),
        ]
        for field, call in cases:
            with pytest.raises(ValidationError) as info:
                await call()
            assert info.value.field == field
        assert [m.id for m in await b.fetch_inbox()] == [direct.id]
        assert await a.fetch_inbox() == []

    # -- the longest patterns ------------------------------------------------

    async def test_leases_on_the_longest_patterns(self, open_bus: OpenBus) -> None:
        """Paths of 1,024 characters and patterns of hundreds of wildcards get an answer."""
        a, b = await open_bus("agent-a"), await open_bus("agent-b")
        assert await a.acquire_lease("b" * 600, 10_000) is True
        assert await b.acquire_lease("*" * 600, 10_000) is False
        status = await b.is_leased("*" * 600)
        assert status.is_leased and status.agent_id == "agent-a" and status.pattern == "b" * 600
        assert await b.acquire_lease("b" * 1000, 10_000) is True
        deep = "/".join(["d"] * 512)
        assert await a.acquire_lease(deep, 10_000) is True
        assert await b.acquire_lease("/".join(["**"] * 341), 10_000) is False
        assert await b.acquire_lease("/".join(["*"] * 511), 10_000) is True
        assert (await b.is_leased(deep)).agent_id == "agent-a"

    # -- bad input ---------------------------------------------------------

    async def test_bad_input_is_refused_by_field(
        self, open_bus: OpenBus, bus_spec: StoreSpec
    ) -> None:
        """Bad ttl, escaping paths, unknown types, oversize payloads, empty ids: field named."""
        a = await open_bus("agent-a")
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("ttl_ms", lambda: a.acquire_lease("src/x.py", 0)),
            ("ttl_ms", lambda: a.acquire_lease("src/x.py", -5)),
            ("path", lambda: a.acquire_lease("../outside.py", 1000)),
            ("path", lambda: a.acquire_lease("/etc/passwd", 1000)),
            ("path", lambda: a.acquire_lease("", 1000)),
            ("type", lambda: a.publish("task.exploded", {})),
            ("payload", lambda: a.publish(MessageType.TASK_PROGRESS, {"blob": "x" * 300_000})),
            ("agent_id", lambda: a.send_to("", MessageType.COORDINATION_REQUEST, {})),
            ("ttl_ms", lambda: a.acquire_lease("src/x.py", MAX_TTL_MS + 1)),
            ("ttl_ms", lambda: a.grant_lease("src/x.py", 2**62)),
            ("path", lambda: a.acquire_lease("src/\ud800.py", 1000)),
            ("path", lambda: a.is_leased("src/\udfff")),
            ("payload", lambda: a.publish(MessageType.TASK_PROGRESS, {"\ud800": 1})),
            ("payload", lambda: a.publish(MessageType.TASK_PROGRESS, {"k": ["\ud800"]})),
            ("payload", lambda: a.publish(MessageType.TASK_PROGRESS, nested(5_000))),
            ("payload", lambda: a.publish(MessageType.TASK_PROGRESS, nested(MAX_JSON_DEPTH + 1))),
            (
                "payload",
                lambda: a.send_to("agent-b", MessageType.COORDINATION_REQUEST, nested(5_000)),
            ),
            (
                "correlation_id",
                lambda: a.publish(MessageType.TASK_PROGRESS, {}, correlation_id="\ud800"),
            ),
            ("info", lambda: a.send_heartbeat(AgentStatus.BUSY, {"\ud800": 1})),
            ("info", lambda: a.send_heartbeat(AgentStatus.BUSY, nested(5_000))),
        ]
        for field, call in cases:
            with pytest.raises(ValidationError) as info:
                await call()
            assert info.value.field == field, f"expected field {field!r}, got {info.value.field!r}"
        assert await a.list_leases() == []
        assert await a.fetch_inbox() == []
        assert await a.list_agents(include_offline=True) == []
        assert await a.acquire_lease("src/x.py", 1000) is True
        with pytest.raises(ValidationError) as info:
            await a.renew_lease("src/x.py", MAX_TTL_MS + 1)
        assert info.value.field == "ttl_ms"
        with pytest.raises(ValidationError) as info:
            bus_spec.build("", presence_window_ms=WINDOW_MS)
        assert info.value.field == "agent_id"
