"""Two server processes, two agent ids, one lease or one task: exactly one wins."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

CLOCK = re.compile(r"until \d\d:\d\d:\d\d")


async def test_two_agents_contend_for_one_lease(connect: Any) -> None:
    async with connect("agent-1") as one, connect("agent-2") as two:
        args = {"action": "reserve", "paths": ["src/core.py"]}
        results = await asyncio.gather(one.call_tool("lease", args), two.call_tool("lease", args))
        winners = [i for i, r in enumerate(results) if not r.is_error]
        assert len(winners) == 1, [r.content[0].text for r in results]
        winner = f"agent-{winners[0] + 1}"
        loser = results[1 - winners[0]]
        message = loser.content[0].text
        assert message.startswith("conflict: lease on 'src/core.py' held by " + winner)
        assert CLOCK.search(message), message

        # A glob overlapping the held file is refused too, naming the same holder.
        other = two if winner == "agent-1" else one
        glob = await other.call_tool("lease", {"action": "reserve", "paths": ["src/**"]})
        assert glob.is_error and f"held by {winner}" in glob.content[0].text

        # Shared leases coexist.
        shared = {"action": "reserve", "paths": ["docs/**"], "exclusive": False}
        assert not (await one.call_tool("lease", shared)).is_error
        assert not (await two.call_tool("lease", shared)).is_error


async def test_multi_path_reservation_is_all_or_nothing(connect: Any) -> None:
    async with connect("agent-1") as one, connect("agent-2") as two:
        held = await one.call_tool("lease", {"action": "reserve", "paths": ["src/core.py"]})
        assert not held.is_error
        mine = await two.call_tool("lease", {"action": "reserve", "paths": ["notes.md"]})
        assert not mine.is_error
        refused = await two.call_tool(
            "lease", {"action": "reserve", "paths": ["notes.md", "a.md", "src/core.py"]}
        )
        assert refused.is_error and "held by agent-1" in refused.content[0].text
        who = json.loads((await two.call_tool("lease", {"action": "who"})).content[0].text)
        assert sorted((w["path"], w["holder"]) for w in who) == [
            ("notes.md", "agent-2"),  # held before the call: kept
            ("src/core.py", "agent-1"),
        ]


async def test_a_closed_session_gives_its_leases_back(connect: Any) -> None:
    async with connect("agent-2") as two:
        async with connect("agent-1") as one:
            got = await one.call_tool("lease", {"action": "reserve", "paths": ["src/core.py"]})
            assert not got.is_error
        again = await two.call_tool("lease", {"action": "reserve", "paths": ["src/core.py"]})
        assert not again.is_error, again.content[0].text


async def test_two_agents_contend_for_one_task(connect: Any) -> None:
    async with connect("agent-1") as one, connect("agent-2") as two:
        created = await one.call_tool("task_new", {"title": "only one may do this"})
        task_id = json.loads(created.content[0].text)["id"]
        args = {"action": "claim", "id": task_id}
        results = await asyncio.gather(one.call_tool("task", args), two.call_tool("task", args))
        winners = [i for i, r in enumerate(results) if not r.is_error]
        assert len(winners) == 1, [r.content[0].text for r in results]
        winner = f"agent-{winners[0] + 1}"
        message = results[1 - winners[0]].content[0].text
        assert message.startswith(f"conflict: task '{task_id}' is held by {winner}")
        assert CLOCK.search(message), message

        # The loser cannot finish the winner's task either.
        loser = two if winner == "agent-1" else one
        done = await loser.call_tool("task", {"action": "complete", "id": task_id})
        assert done.is_error and done.content[0].text.startswith("conflict:")
