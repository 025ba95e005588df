"""Synchronous queries, run on the database thread. Lease decisions use the shared rules."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from jetpack.shared import AgentPresence, AgentStatus, Lease, Message, from_ms
from jetpack.shared.rules import paths_overlap

__all__ = [
    "acknowledge",
    "acquire_lease",
    "cleanup",
    "fetch_backlog",
    "fetch_stream",
    "get_cursor",
    "inbox",
    "insert_message",
    "list_dead_letters",
    "list_presence",
    "live_leases",
    "max_seq",
    "record_dead_letter",
    "release_granted_leases",
    "release_lease",
    "remove_listeners",
    "renew_lease",
    "save_progress",
    "upsert_presence",
]

_MESSAGE_COLUMNS = (
    "seq, id, type, from_agent, to_agent, payload, timestamp, correlation_id, ack_required"
)
_LEASE_COLUMNS = "path, agent_id, exclusive, acquired_at, expires_at, fencing_token"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_to_message(row: tuple[Any, ...]) -> Message:
    """A ``messages`` row (``_MESSAGE_COLUMNS``) as a Message."""
    seq, id_, type_, from_agent, to_agent, payload, ts, correlation_id, ack_required = row
    return Message.model_validate(
        {
            "seq": seq,
            "id": id_,
            "type": type_,
            "from_agent": from_agent,
            "to_agent": to_agent,
            "payload": json.loads(payload),
            "timestamp": from_ms(ts),
            "correlation_id": correlation_id,
            "ack_required": bool(ack_required),
        }
    )


def _row_to_lease(row: tuple[Any, ...]) -> Lease:
    path, agent_id, exclusive, acquired_at, expires_at, token = row
    return Lease(
        path=path,
        agent_id=agent_id,
        exclusive=bool(exclusive),
        acquired_at=from_ms(acquired_at),
        expires_at=from_ms(expires_at),
        fencing_token=token,
    )


# -- messages ---------------------------------------------------------------------------


def insert_message(conn: sqlite3.Connection, message: Message, timestamp_ms: int) -> int:
    """Store one message (inside a transaction); return its seq."""
    cur = conn.execute(
        "INSERT INTO messages (id, type, from_agent, to_agent, payload, timestamp,"
        " correlation_id, ack_required) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.id,
            message.type.value,
            message.from_agent,
            message.to_agent,
            _dumps(message.payload),
            timestamp_ms,
            message.correlation_id,
            int(message.ack_required),
        ),
    )
    seq = cur.lastrowid
    assert seq is not None
    return seq


def listener_addresses(conn: sqlite3.Connection) -> list[str]:
    """Wake-up addresses of the open buses."""
    return [row[0] for row in conn.execute("SELECT address FROM listeners")]


def remove_listeners(conn: sqlite3.Connection, addresses: Iterable[str]) -> None:
    """Forget wake-up addresses (inside a transaction)."""
    conn.executemany("DELETE FROM listeners WHERE address = ?", [(a,) for a in addresses])


def max_seq(conn: sqlite3.Connection) -> int:
    """The highest seq ever assigned (0 for a new store)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return int(row[0]) if row else 0


def get_cursor(conn: sqlite3.Connection, agent_id: str) -> int | None:
    """The agent's delivery cursor, or None if it never ran."""
    row = conn.execute("SELECT seq FROM cursors WHERE agent_id = ?", (agent_id,)).fetchone()
    return int(row[0]) if row else None


def fetch_stream(conn: sqlite3.Connection, agent_id: str, after: int, limit: int) -> list[Message]:
    """Broadcasts and this agent's unacknowledged direct messages after ``after``."""
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq > ?"
        " AND (to_agent IS NULL OR (to_agent = ? AND acked_at IS NULL)) ORDER BY seq LIMIT ?",
        (after, agent_id, limit),
    ).fetchall()
    return [row_to_message(r) for r in rows]


def fetch_backlog(conn: sqlite3.Connection, agent_id: str, upto: int) -> list[Message]:
    """Unacknowledged direct messages to ``agent_id`` up to ``upto`` (replayed on start)."""
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE to_agent = ? AND seq <= ?"
        " AND acked_at IS NULL ORDER BY seq",
        (agent_id, upto),
    ).fetchall()
    return [row_to_message(r) for r in rows]


def save_progress(
    conn: sqlite3.Connection, agent_id: str, seq: int, read_ids: list[str], now_ms: int
) -> None:
    """Advance the agent's cursor (never backwards) and mark ``read_ids`` acknowledged."""
    conn.execute(
        "INSERT INTO cursors (agent_id, seq, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (agent_id) DO UPDATE SET seq = max(seq, excluded.seq),"
        " updated_at = excluded.updated_at",
        (agent_id, seq, now_ms),
    )
    if read_ids:
        conn.executemany(
            "UPDATE messages SET acked_at = ? WHERE id = ? AND to_agent = ? AND acked_at IS NULL",
            [(now_ms, mid, agent_id) for mid in read_ids],
        )


def acknowledge(conn: sqlite3.Connection, agent_id: str, message_id: str, now_ms: int) -> bool:
    """Acknowledge a direct message to ``agent_id``; False if unknown or not theirs."""
    cur = conn.execute(
        "UPDATE messages SET acked_at = coalesce(acked_at, ?) WHERE id = ? AND to_agent = ?",
        (now_ms, message_id, agent_id),
    )
    return cur.rowcount > 0


def inbox(
    conn: sqlite3.Connection, agent_id: str, limit: int, include_acked: bool
) -> list[Message]:
    """Direct messages to ``agent_id``, oldest first."""
    acked = "" if include_acked else " AND acked_at IS NULL"
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE to_agent = ?{acked} ORDER BY seq LIMIT ?",
        (agent_id, limit),
    ).fetchall()
    return [row_to_message(r) for r in rows]


def cleanup(conn: sqlite3.Connection, cutoff_ms: int, batch: int) -> int:
    """Delete up to ``batch`` messages and dead letters older than ``cutoff_ms``."""
    cur = conn.execute(
        "DELETE FROM messages WHERE seq IN"
        " (SELECT seq FROM messages WHERE timestamp < ? ORDER BY timestamp LIMIT ?)",
        (cutoff_ms, batch),
    )
    removed = cur.rowcount
    conn.execute(
        "DELETE FROM dead_letters WHERE id IN"
        " (SELECT id FROM dead_letters WHERE failed_at < ? ORDER BY id LIMIT ?)",
        (cutoff_ms, batch),
    )
    return removed


# -- dead letters ---------------------------------------------------------------------


def record_dead_letter(
    conn: sqlite3.Connection,
    agent_id: str,
    message: Message,
    handler: str,
    error: str,
    attempts: int,
    now_ms: int,
) -> None:
    """Keep a message whose handler failed every attempt (inside a transaction)."""
    conn.execute(
        "INSERT INTO dead_letters (agent_id, message_seq, message, handler, error, attempts,"
        " failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (agent_id, message.seq or 0, message.model_dump_json(), handler, error, attempts, now_ms),
    )


def list_dead_letters(conn: sqlite3.Connection, agent_id: str, limit: int) -> list[tuple[Any, ...]]:
    """Raw dead-letter rows of one agent, oldest first."""
    return conn.execute(
        "SELECT id, message, handler, error, attempts, failed_at FROM dead_letters"
        " WHERE agent_id = ? ORDER BY id LIMIT ?",
        (agent_id, limit),
    ).fetchall()


# -- leases ---------------------------------------------------------------------------


def live_leases(conn: sqlite3.Connection, now_ms: int) -> list[Lease]:
    """Every unexpired lease, in grant order."""
    rows = conn.execute(
        f"SELECT {_LEASE_COLUMNS} FROM leases WHERE expires_at > ? ORDER BY fencing_token",
        (now_ms,),
    ).fetchall()
    return [_row_to_lease(r) for r in rows]


def acquire_lease(
    conn: sqlite3.Connection,
    agent_id: str,
    path: str,
    exclusive: bool,
    now_ms: int,
    ttl_ms: int,
) -> tuple[Lease | None, Lease | None]:
    """Grant (inside BEGIN IMMEDIATE) → ``(lease, None)``; refuse → ``(None, conflicting)``."""
    conn.execute("DELETE FROM leases WHERE expires_at <= ?", (now_ms,))
    rows = conn.execute(
        f"SELECT {_LEASE_COLUMNS} FROM leases WHERE agent_id != ? ORDER BY fencing_token",
        (agent_id,),
    ).fetchall()
    for row in rows:
        if (exclusive or row[2]) and paths_overlap(row[0], path):
            return None, _row_to_lease(row)
    conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'fencing'")
    token = conn.execute("SELECT value FROM counters WHERE name = 'fencing'").fetchone()[0]
    expires = now_ms + ttl_ms
    conn.execute(
        f"INSERT INTO leases ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (path, agent_id) DO UPDATE SET exclusive = excluded.exclusive,"
        " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at,"
        " fencing_token = excluded.fencing_token",
        (path, agent_id, int(exclusive), now_ms, expires, token),
    )
    return _row_to_lease((path, agent_id, exclusive, now_ms, expires, token)), None


def renew_lease(
    conn: sqlite3.Connection, agent_id: str, path: str, now_ms: int, ttl_ms: int
) -> bool:
    """Extend the holder's live lease on exactly ``path`` (same fencing token)."""
    cur = conn.execute(
        "UPDATE leases SET expires_at = ? WHERE path = ? AND agent_id = ? AND expires_at > ?",
        (now_ms + ttl_ms, path, agent_id, now_ms),
    )
    return cur.rowcount > 0


def release_lease(conn: sqlite3.Connection, agent_id: str, path: str, now_ms: int) -> bool:
    """Drop the holder's live lease on exactly ``path``."""
    cur = conn.execute(
        "DELETE FROM leases WHERE path = ? AND agent_id = ? AND expires_at > ?",
        (path, agent_id, now_ms),
    )
    conn.execute("DELETE FROM leases WHERE path = ? AND agent_id = ?", (path, agent_id))
    return cur.rowcount > 0


def release_granted_leases(conn: sqlite3.Connection, agent_id: str, granted: dict[str, int]) -> int:
    """Drop the leases of ``agent_id`` that still carry the fencing token of a grant we made.

    A path re-granted since through another bus of the same agent has a newer
    token and stays.
    """
    cur = conn.executemany(
        "DELETE FROM leases WHERE path = ? AND agent_id = ? AND fencing_token = ?",
        [(path, agent_id, token) for path, token in granted.items()],
    )
    return cur.rowcount


# -- presence -------------------------------------------------------------------------


def upsert_presence(
    conn: sqlite3.Connection, agent_id: str, status: AgentStatus, info: dict[str, Any], now_ms: int
) -> None:
    """Record a heartbeat."""
    conn.execute(
        "INSERT INTO presence (agent_id, status, last_seen, info) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status,"
        " last_seen = excluded.last_seen, info = excluded.info",
        (agent_id, status.value, now_ms, _dumps(info)),
    )


def list_presence(
    conn: sqlite3.Connection, now_ms: int, window_ms: int, include_offline: bool
) -> list[AgentPresence]:
    """Agents by id; silent longer than ``window_ms`` (or reporting offline) → offline."""
    out: list[AgentPresence] = []
    for agent_id, status, last_seen, info in conn.execute(
        "SELECT agent_id, status, last_seen, info FROM presence ORDER BY agent_id"
    ):
        reported = AgentStatus(status)
        online = now_ms - last_seen <= window_ms and reported is not AgentStatus.OFFLINE
        if online or include_offline:
            out.append(
                AgentPresence(
                    agent_id=agent_id,
                    status=reported if online else AgentStatus.OFFLINE,
                    last_seen=from_ms(last_seen),
                    online=online,
                    info=json.loads(info),
                )
            )
    return out
