"""Worker processes for the multi-process tests (run as a script, never collected).

``python mcp_mail_child.py subscribe MAIL_DIR AGENT OUT READY STOP [--ack]``
    Records every message it receives as ``<id> <seq> <type>`` lines in OUT
    (written through before acknowledging), acknowledges direct messages with
    ``--ack``, and runs until the file STOP exists.

``python mcp_mail_child.py leases MAIL_DIR AGENT CYCLES START_AT OUT``
    Acquire → hold → release exclusive leases CYCLES times over ``PATHS``;
    writes JSON ``[[path, fencing_token, held_from_ns, held_until_ns], ...]`` to OUT.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import Message
from jetpack.shared.errors import LeaseHeldError

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


async def subscribe(
    mail_dir: str, agent_id: str, out: Path, ready: Path, stop: Path, ack: bool
) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    bus = MCPMailAdapter(agent_id, mail_dir, poll_interval_ms=200)

    async def record(message: Message) -> None:
        os.write(fd, f"{message.id} {message.seq} {message.type.value}\n".encode())
        if ack and message.to_agent == agent_id:
            await bus.acknowledge(message.id)

    bus.subscribe("*", record)
    async with bus:
        ready.write_text(str(os.getpid()))  # noqa: ASYNC240 - a tiny file, once
        while not os.path.exists(stop):  # noqa: ASYNC110, ASYNC240 - another process makes it
            await asyncio.sleep(0.02)
    os.close(fd)


async def leases(mail_dir: str, agent_id: str, cycles: int, start_at: float, out: Path) -> None:
    grants: list[tuple[str, int, int, int]] = []
    offset = sum(map(ord, agent_id))
    async with MCPMailAdapter(agent_id, mail_dir) as bus:
        await asyncio.sleep(max(start_at - time.time(), 0))
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
                raise SystemExit(f"lost my lease on {path}")
            grants.append((path, lease.fencing_token, held_from, held_until))
    out.write_text(json.dumps(grants))  # noqa: ASYNC240 - once, at the end


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "subscribe":
        asyncio.run(
            subscribe(
                args[0], args[1], Path(args[2]), Path(args[3]), Path(args[4]), "--ack" in args
            )
        )
    else:
        asyncio.run(leases(args[0], args[1], int(args[2]), float(args[3]), Path(args[4])))
