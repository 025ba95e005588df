"""Tables, indexes and triggers of the memory database.

``memories`` has every column of the seed's D1 ``memories`` table (times as
epoch milliseconds, metadata as JSON text), so local and edge rows map one to
one. On top of it:

- ``seq``: a stable, monotonic integer per memory (assigned in the write
  transaction, never reused while the row lives). It is the rowid of both
  full-text indexes and of ``memory_vectors``, the keyset of
  :meth:`list_memories`, and insertion order. (SQLite's implicit rowid would not
  do: ``VACUUM`` may renumber it.)
- ``version``: bumped on every write (retrieve, importance), for sync.
- ``memories_fts``: contentless FTS5, ``porter unicode61``: BM25 over words.
  Identifiers are split into words and searched as phrases, so ``bd-q3fy`` is
  the phrase ``bd q3fy``.
- ``memories_tri`` (optional, ``substring_search=True``): contentless FTS5,
  ``trigram``: substring matches that word search cannot see (``SessionMan``
  in ``SessionManager``, CJK text). It costs about 3× the write time, so it is
  off unless asked for; once a file has it, every writer keeps it.
- ``memory_vectors``: one float32 BLOB per memory with its model name and
  dimension, stamped with ``epoch`` (the ``vector_epoch`` of the transaction
  that wrote it) so a process can refresh its in-memory matrix incrementally.
- ``cass_meta``: ``memory_count``, ``vector_count``, ``vector_epoch`` (bumped
  by every vector write and delete), ``dimensions`` and ``embedding_model``
  (the store's one vector space).

Inserts fill the FTS indexes and counters with one ``INSERT … SELECT`` per
batch, in the writing transaction (a per-row trigger made FTS5 inserts 3.5×
slower); delete triggers keep FTS, vectors and counters in step for every
delete, whoever runs it. Memory content is immutable, so nothing else can
drift. The version lives in ``PRAGMA user_version``.
"""

from __future__ import annotations

import logging
import sqlite3

from jetpack.shared.errors import ConflictError

__all__ = ["SCHEMA_VERSION", "SEED_MEMORIES_DDL", "ensure_schema", "ensure_trigram"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""The schema this code reads and writes."""

SEED_MEMORIES_DDL = """
CREATE TABLE memories (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  content TEXT NOT NULL,
  importance REAL NOT NULL DEFAULT 0.5,
  metadata TEXT,
  has_embedding INTEGER DEFAULT 0,
  created_at INTEGER NOT NULL,
  last_accessed INTEGER NOT NULL,
  access_count INTEGER DEFAULT 0
);
CREATE INDEX idx_memories_type ON memories(type);
CREATE INDEX idx_memories_importance ON memories(importance);
CREATE INDEX idx_memories_created_at ON memories(created_at);
CREATE INDEX idx_memories_last_accessed ON memories(last_accessed);
"""
"""The seed's D1 ``memories`` table and its four indexes, verbatim."""

_LOCAL_DDL = """
ALTER TABLE memories ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memories ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
UPDATE memories SET seq = rowid, has_embedding = 0;
CREATE UNIQUE INDEX idx_memories_seq ON memories(seq);
CREATE INDEX idx_memories_type_seq ON memories(type, seq);

CREATE TABLE cass_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO cass_meta(key, value) VALUES
  ('memory_count', (SELECT count(*) FROM memories)),
  ('vector_count', 0),
  ('vector_epoch', 0),
  ('dimensions', NULL),
  ('embedding_model', NULL);

CREATE TABLE memory_vectors (
  seq INTEGER PRIMARY KEY,
  model TEXT NOT NULL,
  dim INTEGER NOT NULL,
  vector BLOB NOT NULL,
  epoch INTEGER NOT NULL
);
CREATE INDEX idx_memory_vectors_epoch ON memory_vectors(epoch);

CREATE VIRTUAL TABLE memories_fts USING fts5(
  content, content='', tokenize='porter unicode61 remove_diacritics 2');
INSERT INTO memories_fts(rowid, content) SELECT seq, content FROM memories;

CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
  INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.seq, old.content);
  DELETE FROM memory_vectors WHERE seq = old.seq;
  UPDATE cass_meta SET value = value - 1 WHERE key = 'memory_count';
END;
CREATE TRIGGER memory_vectors_ad AFTER DELETE ON memory_vectors BEGIN
  UPDATE cass_meta SET value = value - 1 WHERE key = 'vector_count';
  UPDATE cass_meta SET value = value + 1 WHERE key = 'vector_epoch';
  UPDATE memories SET has_embedding = 0 WHERE seq = old.seq;
END;
"""


def _statements(script: str) -> list[str]:
    """Split a DDL script on ``;`` at line ends, keeping trigger bodies whole."""
    out: list[str] = []
    buffer: list[str] = []
    for line in script.strip().splitlines():
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if line.rstrip().endswith(";") and (
            not text.upper().startswith("CREATE TRIGGER") or line.strip() == "END;"
        ):
            out.append(text)
            buffer = []
    if buffer and "\n".join(buffer).strip():
        out.append("\n".join(buffer).strip())
    return out


def ensure_schema(conn: sqlite3.Connection) -> int:
    """Create or upgrade the schema in one ``BEGIN IMMEDIATE`` transaction.

    Returns the version found (0 for a new file or a seed-only file). A file
    newer than this code is a :class:`ConflictError`.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise ConflictError(
                f"memory database schema v{found} is newer than this jetpack-cass "
                f"(v{SCHEMA_VERSION}); upgrade jetpack-cass"
            )
        if found < SCHEMA_VERSION:
            has_seed = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memories'"
            ).fetchone()
            steps = _statements(SEED_MEMORIES_DDL) if not has_seed else []
            steps += _statements(_LOCAL_DDL)
            for statement in steps:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            logger.info("memory database schema v%d -> v%d", found, SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


_TRIGRAM_DDL = """
CREATE VIRTUAL TABLE memories_tri USING fts5(content, content='', tokenize='trigram');
INSERT INTO memories_tri(rowid, content) SELECT seq, content FROM memories;
CREATE TRIGGER memories_tri_ad AFTER DELETE ON memories BEGIN
  INSERT INTO memories_tri(memories_tri, rowid, content) VALUES ('delete', old.seq, old.content);
END;
"""


def has_trigram(conn: sqlite3.Connection) -> bool:
    """Whether the file has the optional trigram (substring) index."""
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memories_tri'"
        ).fetchone()
    )


def ensure_trigram(conn: sqlite3.Connection) -> None:
    """Create and fill the trigram index if the file lacks it (one transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not has_trigram(conn):
            for statement in _statements(_TRIGRAM_DDL):
                conn.execute(statement)
            logger.info("built the trigram (substring) index")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
