"""Identity and isolation of the mail routes and sockets on a real Worker: an agent-bound
token acts only as its agent (403 otherwise, audited, nothing written); another project
sees nothing of this one's mail or leases."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from jetpack.cf_mail import CloudflareMailBus
from jetpack.shared import Message, MessageType
from jetpack.shared.errors import AuthError
from jetpack.shared.testing import eventually
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker


def agent_token(project: EdgeProject, agent: str) -> str:
    """An agent-bound token minted by the project token."""
    headers = {"Authorization": f"Bearer {project.token}"}
    answer = httpx.post(
        f"{project.url}/api/tokens", json={"agent_id": agent}, headers=headers, timeout=60
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def audited(worker: EdgeWorker, project: str, status: int) -> list[dict[str, Any]]:
    code, answer = worker.call("GET", f"/api/audit?limit=1000&project={project}")
    assert code == 200
    return [e for e in answer["entries"] if e["status"] == status]


def ws_url(project: EdgeProject, path: str, agent: str) -> str:
    return f"{project.url.replace('http', 'ws', 1)}{path}?agent_id={agent}"


async def test_an_agent_token_acts_only_as_its_agent(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    p = edge_project
    token_a = agent_token(p, "agent-a")
    async with (
        CloudflareMailBus("agent-b", p.url, p.token) as b,
        CloudflareMailBus("agent-a", p.url, token_a) as a,  # its own agent: all allowed
    ):
        assert await b.acquire_lease("src/b.py", 600_000)
        to_b = await a.send_to("agent-b", MessageType.COORDINATION_REQUEST, {"n": 1})
        to_a = await b.send_to("agent-a", MessageType.COORDINATION_REQUEST, {"n": 2})
        assert to_b.seq is not None and await a.acquire_lease("src/a.py", 600_000)
        assert await a.acknowledge(to_a.id)
        headers = {"Authorization": f"Bearer {token_a}"}
        attempts = [
            ("POST", "/api/mail/publish", {"type": "task.created", "from_agent": "agent-b"}, None),
            ("POST", "/api/mail/ack", {"agent_id": "agent-b", "message_id": to_b.id}, None),
            ("GET", "/api/mail/inbox", None, {"agent_id": "agent-b"}),
            ("POST", "/api/mail/heartbeat", {"agent_id": "agent-b"}, None),
            (
                "POST",
                "/api/mail/lease",
                {"path": "src/x.py", "agent_id": "agent-b", "ttl_ms": 1000},
                None,
            ),
            (
                "POST",
                "/api/mail/lease/renew",
                {"path": "src/b.py", "agent_id": "agent-b", "ttl_ms": 1000},
                None,
            ),
            ("DELETE", "/api/mail/lease", None, {"path": "src/b.py", "agent_id": "agent-b"}),
            ("GET", "/api/mail/dead-letters", None, {"agent_id": "agent-b"}),
        ]
        async with httpx.AsyncClient(base_url=p.url, headers=headers) as http:
            for method, path, body, params in attempts:
                answer = await http.request(method, path, json=body, params=params)
                assert answer.status_code == 403, (method, path, answer.text)
                assert answer.json()["error"]["code"] == "forbidden"
        for path in ("/api/mail/subscribe", "/api/mail/lease/socket"):
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(p, path, "agent-b"), additional_headers=headers):
                    pass
            assert info.value.response.status_code == 403
        with pytest.raises(AuthError):
            async with CloudflareMailBus("agent-b", p.url, token_a):
                pass

        # nothing was written: b's lease, inbox and acknowledgements are as they were
        status = await b.is_leased("src/b.py")
        assert status.is_leased and status.agent_id == "agent-b"
        assert (await b.is_leased("src/x.py")).is_leased is False
        assert [m.id for m in await b.fetch_inbox()] == [to_b.id]
        assert [m.from_agent for m in await b.fetch_inbox(include_acked=True)] == ["agent-a"]
        assert [x.agent_id for x in await b.list_agents(include_offline=True)] == []

    deadline = time.monotonic() + 10
    while len(refused := audited(edge_worker, p.project, 403)) < len(attempts) + 2:
        assert time.monotonic() < deadline, refused
        await asyncio.sleep(0.1)
    routes = {(e["method"], e["route"]) for e in refused}
    assert ("DELETE", "/api/mail/lease") in routes and ("GET", "/api/mail/subscribe") in routes
    assert all(e["agent_id"] == "agent-a" for e in refused)


async def test_a_socket_cannot_speak_for_another_agent(edge_project: EdgeProject) -> None:
    """A `pub` frame naming a sender is refused (the sender is the socket's agent)."""
    p = edge_project
    seen: list[Message] = []
    watcher = CloudflareMailBus("agent-c", p.url, p.token)
    watcher.subscribe("*", seen.append)
    headers = {"Authorization": f"Bearer {p.token}"}
    async with watcher:
        url = ws_url(p, "/api/mail/subscribe", "agent-a")
        async with connect(url, additional_headers=headers) as ws:
            frame = {"id": "msg-forged", "type": "task.created", "from_agent": "agent-b"}
            await ws.send(json.dumps({"op": "pub", "ref": "r1", "m": frame}))
            answers = [json.loads(await ws.recv()) for _ in range(3)]
        error = next(a for a in answers if a["op"] == "error")
        assert error["ref"] == "r1" and error["field"] == "m.from_agent"
        marker = await watcher.publish(MessageType.TASK_UPDATED, {})
        assert await eventually(lambda: any(m.id == marker.id for m in seen))
        assert [m.id for m in seen] == [marker.id], "the forged message was stored and sent"
    headers["Authorization"] = "Bearer jp_wrong"
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(p, "/api/mail/subscribe", "agent-a"), additional_headers=headers):
            pass
    assert info.value.response.status_code == 401


async def test_projects_are_isolated(edge_worker: EdgeWorker, edge_project: EdgeProject) -> None:
    """Project B, with the same agent ids, never sees A's broadcasts, direct mail or leases."""
    a_project, b_project = edge_project, edge_worker.new_project()
    seen_b: list[Message] = []
    seen_a: list[Message] = []
    b_bus = CloudflareMailBus("agent-2", b_project.url, b_project.token)
    b_bus.subscribe("*", seen_b.append)
    a_bus = CloudflareMailBus("agent-2", a_project.url, a_project.token)
    a_bus.subscribe("*", seen_a.append)
    async with (
        CloudflareMailBus("agent-1", a_project.url, a_project.token) as one,
        b_bus,
        a_bus,
        CloudflareMailBus("agent-1", b_project.url, b_project.token) as b_one,
    ):
        await one.publish(MessageType.TASK_CREATED, {"secret": 1})
        await one.send_to("agent-2", MessageType.COORDINATION_REQUEST, {"secret": 2})
        lease = await one.grant_lease("src/secret/**", 600_000)
        assert await eventually(lambda: len(seen_a) == 2)
        marker = await b_one.publish(MessageType.TASK_UPDATED, {"b": True})
        assert await eventually(lambda: any(m.id == marker.id for m in seen_b))
        assert [m.id for m in seen_b] == [marker.id]
        assert await b_bus.fetch_inbox(include_acked=True) == []
        assert (await b_one.is_leased("src/secret/x.py")).is_leased is False
        assert await b_one.list_leases() == []
        assert await b_one.renew_lease("src/secret/**", 1000) is False
        assert await b_one.release_lease("src/secret/**") is False
        assert await b_one.acquire_lease("src/secret/**", 1000) is True  # B's own lease
        still = await one.is_leased("src/secret/x.py")
        assert still.is_leased and still.fencing_token == lease.fencing_token
