"""The mail store's SQLite schema: one file, ``<mail_dir>/mail.db``, in WAL mode.

Tables (times are epoch milliseconds, UTC)::

    messages      every message; ``seq`` is a global, never reused sequence number
    cursors       per agent: the highest seq its handlers have been given
    leases        live file leases, one row per (path, holder), with a fencing token
    counters      store-wide counters (``fencing``: the last token granted)
    presence      last heartbeat per agent
    dead_letters  (message, handler) pairs that failed every retry
    listeners     the wake-up sockets of the buses that are open now
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of a store this code created or migrated."""

_DDL = """
CREATE TABLE IF NOT EXISTS messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    from_agent     TEXT    NOT NULL,
    to_agent       TEXT,
    payload        TEXT    NOT NULL,
    timestamp      INTEGER NOT NULL,
    correlation_id TEXT,
    ack_required   INTEGER NOT NULL DEFAULT 0,
    acked_at       INTEGER
);
CREATE INDEX IF NOT EXISTS messages_inbox ON messages (to_agent, seq) WHERE to_agent IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_time ON messages (timestamp);

CREATE TABLE IF NOT EXISTS cursors (
    agent_id   TEXT    PRIMARY KEY,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS leases (
    path          TEXT    NOT NULL,
    agent_id      TEXT    NOT NULL,
    exclusive     INTEGER NOT NULL,
    acquired_at   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    fencing_token INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (path, agent_id)
);

CREATE TABLE IF NOT EXISTS counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('fencing', 0);

CREATE TABLE IF NOT EXISTS presence (
    agent_id  TEXT    PRIMARY KEY,
    status    TEXT    NOT NULL,
    last_seen INTEGER NOT NULL,
    info      TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id    TEXT    NOT NULL,
    message_seq INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    handler     TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_agent ON dead_letters (agent_id, id);

CREATE TABLE IF NOT EXISTS listeners (
    address    TEXT    PRIMARY KEY,
    agent_id   TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema; refuse a store written by a newer version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"mail store schema v{version} is newer than this jetpack-mcp-mail (v{SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
