"""Write jobs: each a plain function of the writer thread's ``sqlite3`` connection.

The bus runs each with ``await db.write(job, ...)``: one ``BEGIN IMMEDIATE``
transaction under the ``mail.db.lock`` file lock
(:class:`jetpack.shared.sqlite.Database`), committed when the job returns,
rolled back when it raises. A lease decision is one such job, so two processes
can never both win. Lease overlap is the shared rule ``rules.paths_overlap``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from jetpack.mcp_mail import _sql
from jetpack.mcp_mail._rows import dumps, message_params, row_to_lease
from jetpack.shared import AgentStatus, Lease, Message
from jetpack.shared.rules import paths_overlap

__all__ = [
    "acknowledge",
    "acquire_lease",
    "cleanup",
    "close_bus",
    "insert_message",
    "open_bus",
    "record_dead_letter",
    "release_lease",
    "remove_listeners",
    "renew_lease",
    "save_progress",
    "upsert_presence",
]


# -- a bus opening and closing ----------------------------------------------------------


def open_bus(
    conn: sqlite3.Connection, agent_id: str, address: str | None, pid: int, now_ms: int
) -> int:
    """Register the bus's wake-up address; its start position (the agent's cursor, or the end)."""
    if address is not None:
        conn.execute(_sql.ADD_LISTENER, (address, agent_id, pid, now_ms))
    row = conn.execute(_sql.GET_CURSOR, (agent_id,)).fetchone()
    if row is not None:
        return int(row[0])
    last = conn.execute(_sql.MAX_SEQ).fetchone()
    return int(last[0]) if last else 0


def close_bus(
    conn: sqlite3.Connection,
    agent_id: str,
    pos: int,
    granted: dict[str, int],
    address: str | None,
    now_ms: int,
) -> None:
    """Save the cursor, release the leases granted through this bus, forget its address.

    A path re-granted since through another bus of the same agent carries a
    newer fencing token and stays.
    """
    save_progress(conn, agent_id, pos, [], now_ms)
    conn.executemany(
        _sql.RELEASE_GRANTED_LEASE,
        [(path, agent_id, token) for path, token in granted.items()],
    )
    if address is not None:
        remove_listeners(conn, [address])


def remove_listeners(conn: sqlite3.Connection, addresses: Iterable[str]) -> None:
    """Forget wake-up addresses (of buses that are gone)."""
    conn.executemany(_sql.DELETE_LISTENER, [(a,) for a in addresses])


# -- messages ---------------------------------------------------------------------------


def insert_message(
    conn: sqlite3.Connection, message: Message, timestamp_ms: int
) -> tuple[int, list[str]]:
    """Store one message; its seq and the wake-up addresses to poke once committed."""
    seq = conn.execute(_sql.INSERT_MESSAGE, message_params(message, timestamp_ms)).lastrowid
    assert seq is not None
    return seq, [row[0] for row in conn.execute(_sql.LISTENERS)]


def save_progress(
    conn: sqlite3.Connection, agent_id: str, seq: int, read_ids: list[str], now_ms: int
) -> None:
    """Advance the agent's cursor (never backwards) and mark ``read_ids`` acknowledged."""
    conn.execute(_sql.SAVE_CURSOR, (agent_id, seq, now_ms))
    if read_ids:
        conn.executemany(_sql.MARK_READ, [(now_ms, mid, agent_id) for mid in read_ids])


def acknowledge(conn: sqlite3.Connection, agent_id: str, message_id: str, now_ms: int) -> bool:
    """Acknowledge a direct message to ``agent_id``; False if unknown or not theirs."""
    return conn.execute(_sql.ACKNOWLEDGE, (now_ms, message_id, agent_id)).rowcount > 0


def cleanup(conn: sqlite3.Connection, cutoff_ms: int, batch: int) -> int:
    """Delete up to ``batch`` messages and dead letters older than ``cutoff_ms``."""
    removed = conn.execute(_sql.DELETE_OLD_MESSAGES, (cutoff_ms, batch)).rowcount
    conn.execute(_sql.DELETE_OLD_DEAD_LETTERS, (cutoff_ms, batch))
    return removed


def record_dead_letter(
    conn: sqlite3.Connection,
    agent_id: str,
    message: Message,
    handler: str,
    error: str,
    attempts: int,
    now_ms: int,
) -> None:
    """Keep a message whose handler failed every attempt."""
    conn.execute(
        _sql.INSERT_DEAD_LETTER,
        (agent_id, message.seq or 0, message.model_dump_json(), handler, error, attempts, now_ms),
    )


# -- leases -----------------------------------------------------------------------------


def acquire_lease(
    conn: sqlite3.Connection,
    agent_id: str,
    path: str,
    exclusive: bool,
    now_ms: int,
    ttl_ms: int,
) -> tuple[Lease | None, Lease | None]:
    """Grant → ``(lease, None)``; refuse → ``(None, the conflicting lease)``."""
    conn.execute(_sql.DELETE_EXPIRED_LEASES, (now_ms,))
    for row in conn.execute(_sql.OTHER_AGENTS_LEASES, (agent_id,)).fetchall():
        if (exclusive or row[2]) and paths_overlap(row[0], path):
            return None, row_to_lease(row)
    token = conn.execute(_sql.NEXT_FENCING_TOKEN).fetchone()[0]
    row = (path, agent_id, int(exclusive), now_ms, now_ms + ttl_ms, token)
    conn.execute(_sql.UPSERT_LEASE, row)
    return row_to_lease(row), None


def renew_lease(
    conn: sqlite3.Connection, agent_id: str, path: str, now_ms: int, ttl_ms: int
) -> bool:
    """Extend the holder's live lease on exactly ``path`` (same fencing token)."""
    return conn.execute(_sql.RENEW_LEASE, (now_ms + ttl_ms, path, agent_id, now_ms)).rowcount > 0


def release_lease(conn: sqlite3.Connection, agent_id: str, path: str, now_ms: int) -> bool:
    """Drop the holder's lease on exactly ``path``; True if it was still live."""
    live = conn.execute(_sql.RELEASE_LIVE_LEASE, (path, agent_id, now_ms)).rowcount > 0
    conn.execute(_sql.RELEASE_LEASE, (path, agent_id))
    return live


# -- presence ---------------------------------------------------------------------------


def upsert_presence(
    conn: sqlite3.Connection,
    agent_id: str,
    status: AgentStatus,
    info: dict[str, object],
    now_ms: int,
) -> None:
    """Record a heartbeat."""
    conn.execute(_sql.UPSERT_PRESENCE, (agent_id, status.value, now_ms, dumps(info)))
