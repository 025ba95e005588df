"""SQL statements of the mail store, as plain strings with ``?`` parameters.

Times are epoch milliseconds; payloads and heartbeat info are JSON text. The
jobs of :mod:`~jetpack.mcp_mail._reads` and :mod:`~jetpack.mcp_mail._writes`
run them; the columns read match :mod:`~jetpack.mcp_mail._rows`.
"""

from __future__ import annotations

__all__ = [
    "ACKNOWLEDGE",
    "ADD_LISTENER",
    "BACKLOG",
    "DEAD_LETTERS",
    "DELETE_EXPIRED_LEASES",
    "DELETE_LISTENER",
    "DELETE_OLD_DEAD_LETTERS",
    "DELETE_OLD_MESSAGES",
    "GET_CURSOR",
    "INBOX",
    "INBOX_UNACKED",
    "INSERT_DEAD_LETTER",
    "INSERT_MESSAGE",
    "LEASE_COLUMNS",
    "LISTENERS",
    "LIVE_LEASES",
    "MARK_READ",
    "MAX_SEQ",
    "MESSAGE_COLUMNS",
    "NEXT_FENCING_TOKEN",
    "OTHER_AGENTS_LEASES",
    "PRESENCE",
    "RELEASE_GRANTED_LEASE",
    "RELEASE_LEASE",
    "RELEASE_LIVE_LEASE",
    "RENEW_LEASE",
    "SAVE_CURSOR",
    "STREAM",
    "UPSERT_LEASE",
    "UPSERT_PRESENCE",
]

MESSAGE_COLUMNS = (
    "seq, id, type, from_agent, to_agent, payload, timestamp, correlation_id, ack_required"
)
"""Columns :func:`~jetpack.mcp_mail._rows.row_to_message` reads."""

LEASE_COLUMNS = "path, agent_id, exclusive, acquired_at, expires_at, fencing_token"
"""Columns :func:`~jetpack.mcp_mail._rows.row_to_lease` reads."""

# -- messages -------------------------------------------------------------------

INSERT_MESSAGE = (
    "INSERT INTO messages (id, type, from_agent, to_agent, payload, timestamp,"
    " correlation_id, ack_required) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
STREAM = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq > ?"
    " AND (to_agent IS NULL OR (to_agent = ? AND acked_at IS NULL)) ORDER BY seq LIMIT ?"
)
"""Broadcasts and one agent's unacknowledged direct messages after a seq."""
BACKLOG = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE to_agent = ? AND seq <= ?"
    " AND acked_at IS NULL ORDER BY seq"
)
"""One agent's unacknowledged direct messages up to a seq (replayed on start)."""
INBOX = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE to_agent = ? ORDER BY seq LIMIT ?"
INBOX_UNACKED = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE to_agent = ? AND acked_at IS NULL"
    " ORDER BY seq LIMIT ?"
)
MAX_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"
GET_CURSOR = "SELECT seq FROM cursors WHERE agent_id = ?"
SAVE_CURSOR = (
    "INSERT INTO cursors (agent_id, seq, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (agent_id) DO UPDATE SET seq = max(seq, excluded.seq),"
    " updated_at = excluded.updated_at"
)
"""Advance an agent's cursor, never backwards."""
MARK_READ = "UPDATE messages SET acked_at = ? WHERE id = ? AND to_agent = ? AND acked_at IS NULL"
ACKNOWLEDGE = "UPDATE messages SET acked_at = coalesce(acked_at, ?) WHERE id = ? AND to_agent = ?"
DELETE_OLD_MESSAGES = (
    "DELETE FROM messages WHERE seq IN"
    " (SELECT seq FROM messages WHERE timestamp < ? ORDER BY timestamp LIMIT ?)"
)

# -- wake-up listeners ------------------------------------------------------------

LISTENERS = "SELECT address FROM listeners"
ADD_LISTENER = (
    "INSERT OR REPLACE INTO listeners (address, agent_id, pid, started_at) VALUES (?, ?, ?, ?)"
)
DELETE_LISTENER = "DELETE FROM listeners WHERE address = ?"

# -- dead letters ---------------------------------------------------------------------

INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (agent_id, message_seq, message, handler, error, attempts,"
    " failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DEAD_LETTERS = (
    "SELECT id, message, handler, error, attempts, failed_at FROM dead_letters"
    " WHERE agent_id = ? ORDER BY id LIMIT ?"
)
DELETE_OLD_DEAD_LETTERS = (
    "DELETE FROM dead_letters WHERE id IN"
    " (SELECT id FROM dead_letters WHERE failed_at < ? ORDER BY id LIMIT ?)"
)

# -- leases ---------------------------------------------------------------------------

LIVE_LEASES = f"SELECT {LEASE_COLUMNS} FROM leases WHERE expires_at > ? ORDER BY fencing_token"
DELETE_EXPIRED_LEASES = "DELETE FROM leases WHERE expires_at <= ?"
OTHER_AGENTS_LEASES = (
    f"SELECT {LEASE_COLUMNS} FROM leases WHERE agent_id != ? ORDER BY fencing_token"
)
NEXT_FENCING_TOKEN = "UPDATE counters SET value = value + 1 WHERE name = 'fencing' RETURNING value"
UPSERT_LEASE = (
    f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (path, agent_id) DO UPDATE SET exclusive = excluded.exclusive,"
    " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at,"
    " fencing_token = excluded.fencing_token"
)
RENEW_LEASE = "UPDATE leases SET expires_at = ? WHERE path = ? AND agent_id = ? AND expires_at > ?"
RELEASE_LIVE_LEASE = "DELETE FROM leases WHERE path = ? AND agent_id = ? AND expires_at > ?"
RELEASE_LEASE = "DELETE FROM leases WHERE path = ? AND agent_id = ?"
RELEASE_GRANTED_LEASE = "DELETE FROM leases WHERE path = ? AND agent_id = ? AND fencing_token = ?"

# -- presence -----------------------------------------------------------------------

UPSERT_PRESENCE = (
    "INSERT INTO presence (agent_id, status, last_seen, info) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status,"
    " last_seen = excluded.last_seen, info = excluded.info"
)
PRESENCE = "SELECT agent_id, status, last_seen, info FROM presence ORDER BY agent_id"
