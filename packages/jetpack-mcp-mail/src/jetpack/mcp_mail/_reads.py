"""Read jobs: plain functions of a ``sqlite3`` connection, each run in one snapshot.

The bus runs them with ``await db.read(job, ...)`` on a reader thread; the SQL
is that of :mod:`~jetpack.mcp_mail._sql`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from jetpack.mcp_mail import _sql
from jetpack.mcp_mail._rows import row_to_lease, row_to_message, row_to_presence
from jetpack.shared import AgentPresence, Lease, Message

__all__ = [
    "backlog",
    "dead_letters",
    "inbox",
    "live_leases",
    "presence",
    "stream",
]


def stream(conn: sqlite3.Connection, agent_id: str, after: int, limit: int) -> list[Message]:
    """Broadcasts and this agent's unacknowledged direct messages after ``after``."""
    rows = conn.execute(_sql.STREAM, (after, agent_id, limit)).fetchall()
    return [row_to_message(r) for r in rows]


def backlog(conn: sqlite3.Connection, agent_id: str, upto: int) -> list[Message]:
    """Unacknowledged direct messages to ``agent_id`` up to ``upto`` (replayed on start)."""
    return [row_to_message(r) for r in conn.execute(_sql.BACKLOG, (agent_id, upto)).fetchall()]


def inbox(
    conn: sqlite3.Connection, agent_id: str, limit: int, include_acked: bool
) -> list[Message]:
    """Direct messages to ``agent_id``, oldest first."""
    statement = _sql.INBOX if include_acked else _sql.INBOX_UNACKED
    return [row_to_message(r) for r in conn.execute(statement, (agent_id, limit)).fetchall()]


def dead_letters(conn: sqlite3.Connection, agent_id: str, limit: int) -> list[tuple[Any, ...]]:
    """Raw dead-letter rows of one agent, oldest first."""
    return conn.execute(_sql.DEAD_LETTERS, (agent_id, limit)).fetchall()


def live_leases(conn: sqlite3.Connection, now_ms: int) -> list[Lease]:
    """Every unexpired lease, in grant order."""
    return [row_to_lease(r) for r in conn.execute(_sql.LIVE_LEASES, (now_ms,)).fetchall()]


def presence(
    conn: sqlite3.Connection, now_ms: int, window_ms: int, include_offline: bool
) -> list[AgentPresence]:
    """Agents by id; silent longer than ``window_ms`` (or reporting offline) → offline."""
    everyone = [row_to_presence(r, now_ms, window_ms) for r in conn.execute(_sql.PRESENCE)]
    return [agent for agent in everyone if agent.online or include_offline]
