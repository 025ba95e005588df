"""The server over real stdio: tool listing, every tool, and the stores behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp.client.client import Client

from jetpack.shared import TaskStatus
from jetpack.shared.config import load_config
from jetpack.shared.registry import create_store

TOOL_NAMES = ["tasks", "task_new", "task", "mail", "lease", "memory"]


def text(result: Any) -> str:
    assert len(result.content) == 1
    return str(result.content[0].text)


def ok(result: Any) -> Any:
    assert not result.is_error, text(result)
    body = text(result)
    return json.loads(body) if body[:1] in "[{" else body


def err(result: Any) -> str:
    assert result.is_error, text(result)
    return text(result)


async def test_lists_six_small_tools(connect: Any) -> None:
    async with connect("agent-1") as client:
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == TOOL_NAMES
        for tool in listed.tools:
            assert tool.description and len(tool.description) <= 200
            assert tool.input_schema["type"] == "object"
            assert tool.input_schema["additionalProperties"] is False
        listing = listed.model_dump_json(by_alias=True, exclude_none=True)
        assert len(listing) < 3_600, len(listing)  # Agent Mail's lists cost 10-50k tokens
        assert "maxLength" not in listing  # size limits are enforced, not advertised
        assert "lease reserve" in (client.instructions or "")


async def test_task_tools_change_the_task_store(connect: Any, project: Path) -> None:
    async with connect("agent-1") as client:
        first = ok(await client.call_tool("task_new", {"title": "schema", "priority": "high"}))
        second = ok(
            await client.call_tool(
                "task_new", {"title": "api", "deps": [first["id"]], "skills": ["python"]}
            )
        )
        ready = ok(await client.call_tool("tasks", {"action": "ready"}))
        assert [t["id"] for t in ready] == [first["id"]]

        refused = err(await client.call_tool("task", {"action": "claim", "id": second["id"]}))
        assert "waiting on" in refused and first["id"] in refused

        claimed = ok(await client.call_tool("task", {"action": "claim", "id": first["id"]}))
        assert claimed["assigned_agent"] == "agent-1"
        progress = ok(
            await client.call_tool(
                "task", {"action": "progress", "id": first["id"], "percent": 50, "note": "half"}
            )
        )
        assert progress["status"] == "in_progress" and progress["claim_until"]
        mine = ok(await client.call_tool("tasks", {"action": "mine"}))
        assert [t["id"] for t in mine] == [first["id"]]
        done = ok(
            await client.call_tool(
                "task", {"action": "complete", "id": first["id"], "note": "tables made"}
            )
        )
        assert done == {"id": first["id"], "status": "completed"}

        nxt = ok(await client.call_tool("task", {"action": "claim", "skills": ["python"]}))
        assert nxt["id"] == second["id"]
        failed = ok(
            await client.call_tool(
                "task", {"action": "fail", "id": second["id"], "error": "tests red"}
            )
        )
        assert failed["retries"] == 1 and failed["retry_after"]
        shown = ok(await client.call_tool("tasks", {"action": "show", "id": second["id"]}))
        assert shown["last_error"] == "tests red"

    async with create_store(load_config(project), "tasks") as tasks:
        one = await tasks.get_task(first["id"])
        two = await tasks.get_task(second["id"])
        assert one is not None and one.status is TaskStatus.COMPLETED
        assert one.metadata["result"] == {"summary": "tables made"}
        assert two is not None and two.retry_count == 1 and two.assigned_agent is None


async def test_mail_tools_reach_the_other_agent(connect: Any, project: Path) -> None:
    async with connect("agent-1") as one, connect("agent-2") as two:
        sent = ok(
            await one.call_tool(
                "mail", {"action": "send", "to": "agent-2", "text": "take auth?", "re": "t-1"}
            )
        )
        ok(await one.call_tool("mail", {"action": "send", "text": "schema is done"}))
        inbox = ok(await two.call_tool("mail", {"action": "inbox"}))
        assert [m["id"] for m in inbox["direct"]] == [sent["id"]]
        assert inbox["direct"][0] | {"at": None} == {
            "id": sent["id"],
            "from": "agent-1",
            "to": "agent-2",
            "type": "coordination.request",
            "text": "take auth?",
            "re": "t-1",
            "at": None,
        }
        assert [m["text"] for m in inbox["broadcast"]] == ["schema is done"]
        acked = ok(await two.call_tool("mail", {"action": "ack", "ids": [sent["id"], "msg-x"]}))
        assert acked == {"acked": [sent["id"]], "unknown": ["msg-x"]}
        again = ok(await two.call_tool("mail", {"action": "inbox"}))
        assert again == {"direct": [], "broadcast": []}

    async with create_store(load_config(project), "mail", agent_id="agent-2") as bus:
        assert await bus.fetch_inbox() == []
        (kept,) = await bus.fetch_inbox(include_acked=True)
        assert kept.from_agent == "agent-1"


async def test_lease_tools(connect: Any, project: Path) -> None:
    async with connect("agent-1") as client:
        got = ok(
            await client.call_tool(
                "lease", {"action": "reserve", "paths": ["src/auth/**", "README.md"], "ttl_s": 60}
            )
        )
        assert [g["path"] for g in got] == ["src/auth/**", "README.md"]
        assert all(g["holder"] == "agent-1" and g["exclusive"] for g in got)
        who = ok(await client.call_tool("lease", {"action": "who", "paths": ["src/auth/x.py"]}))
        assert who == [
            {
                "path": "src/auth/x.py",
                "holder": "agent-1",
                "exclusive": True,
                "until": got[0]["until"],
                "via": "src/auth/**",
            }
        ]
        renewed = ok(
            await client.call_tool(
                "lease", {"action": "renew", "paths": ["README.md"], "ttl_s": 600}
            )
        )
        assert [(r["path"], r["holder"]) for r in renewed] == [("README.md", "agent-1")]
        assert renewed[0]["fence"] == got[1]["fence"]
        released = ok(
            await client.call_tool(
                "lease", {"action": "release", "paths": ["README.md", "nope.txt"]}
            )
        )
        assert released == {"released": ["README.md"], "not_held": ["nope.txt"]}
        missing = err(await client.call_tool("lease", {"action": "renew", "paths": ["x.py"]}))
        assert missing.startswith("conflict:") and "x.py" in missing

        async with create_store(load_config(project), "mail", agent_id="checker") as bus:
            assert [(lease.path, lease.agent_id) for lease in await bus.list_leases()] == [
                ("src/auth/**", "agent-1")
            ]


async def test_memory_tools_store_and_find(connect: Any) -> None:
    async with connect("agent-1") as client:
        stored = ok(
            await client.call_tool(
                "memory",
                {
                    "action": "store",
                    "content": "SQLite needs BEGIN IMMEDIATE for claims under contention",
                    "type": "successful_fix",
                    "importance": 0.9,
                    "task": "bd-1",
                },
            )
        )
        assert stored["id"]
        found = ok(await client.call_tool("memory", {"action": "search", "query": "IMMEDIATE"}))
        assert found[0]["id"] == stored["id"]
        assert found[0]["type"] == "successful_fix" and found[0]["importance"] == 0.9


async def test_bad_arguments_are_tool_errors_and_the_server_keeps_serving(
    connect: Any,
) -> None:
    async with connect("agent-1") as client:
        cases = [
            ("task", {"action": "explode"}, "invalid argument: action: must be one of"),
            ("task", {}, "invalid argument: action: is required"),
            ("task_new", {"title": "t", "colour": "red"}, "invalid argument: colour: unknown"),
            ("task_new", {"title": 7}, "invalid argument: title: must be a string"),
            ("lease", {"action": "reserve", "paths": ["a"], "ttl_s": 1}, "ttl_s: must be at"),
            ("lease", {"action": "reserve"}, "invalid argument: paths: is required"),
            ("mail", {"action": "send", "text": "x", "type": "gossip"}, "type: unknown message"),
            ("tasks", {"action": "show", "id": "bd-nope"}, "not found: task 'bd-nope'"),
            ("task", {"action": "complete", "id": "bd-nope"}, "not found"),
            ("memory", {"action": "search"}, "invalid argument: query: is required"),
            ("no_such_tool", {}, "unknown tool"),
        ]
        for name, args, expected in cases:
            message = err(await client.call_tool(name, args))
            assert expected in message, (name, args, message)
        created = ok(await client.call_tool("task_new", {"title": "still alive"}))
        assert created["title"] == "still alive"


async def test_auto_mode_client_also_works(connect: Any) -> None:
    async with connect("agent-1", mode="auto") as client:
        assert isinstance(client, Client)
        assert ok(await client.call_tool("tasks", {"action": "ready"})) == []
