"""Tables, indexes and the in-place migrations of the task database.

The ``tasks`` table has every column of the seed's D1 ``tasks`` table (JSON
arrays as TEXT, times as epoch milliseconds), so local and edge rows map one to
one. Schema version 2 adds what the local store needs on top:

- ``metadata``, ``not_before`` (retry back-off), ``claim_expires_at`` (claim
  TTL) and ``version`` (bumped on every write, used by sync);
- ``priority_rank``, a virtual generated column (0 = critical … 3 = low) so the
  claim order is an index scan;
- ``task_deps``, one row per dependency edge, so readiness is a ``NOT EXISTS``
  probe on an index instead of JSON parsing.

The version lives in ``PRAGMA user_version``. Version 1 is a file that holds
only the seed's D1 table (``user_version`` 0 with a ``tasks`` table); opening
it upgrades it in place, inside one ``BEGIN IMMEDIATE`` transaction, so two
processes opening an old file at once migrate it exactly once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from jetpack.shared.errors import ConflictError

__all__ = ["SCHEMA_VERSION", "SEED_TASKS_DDL", "ensure_schema"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""The schema this code reads and writes."""

SEED_TASKS_DDL = """
CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT,
  status TEXT NOT NULL DEFAULT 'pending',
  priority TEXT NOT NULL DEFAULT 'medium',
  dependencies TEXT,
  blockers TEXT,
  required_skills TEXT,
  estimated_minutes INTEGER,
  actual_minutes INTEGER,
  tags TEXT,
  retry_count INTEGER DEFAULT 0,
  max_retries INTEGER DEFAULT 2,
  branch TEXT,
  origin_branch TEXT,
  target_branches TEXT,
  assigned_agent TEXT,
  last_error TEXT,
  failure_type TEXT,
  last_attempt_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  completed_at INTEGER
);
CREATE INDEX idx_tasks_status ON tasks(status);
CREATE INDEX idx_tasks_agent ON tasks(assigned_agent);
CREATE INDEX idx_tasks_priority ON tasks(priority);
"""
"""Schema version 1: the seed's D1 ``tasks`` table and its three indexes, verbatim."""

_V2_STEPS = (
    "ALTER TABLE tasks ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE tasks ADD COLUMN not_before INTEGER",
    "ALTER TABLE tasks ADD COLUMN claim_expires_at INTEGER",
    "ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
    """ALTER TABLE tasks ADD COLUMN priority_rank INTEGER GENERATED ALWAYS AS (
         CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1
                       WHEN 'medium' THEN 2 ELSE 3 END) VIRTUAL""",
    # NULL arrays (D1 rows written by other tools) become '[]' so the ready
    # rule can compare blockers with '[]' and json_each never sees NULL.
    """UPDATE tasks SET
         dependencies = coalesce(dependencies, '[]'), blockers = coalesce(blockers, '[]'),
         required_skills = coalesce(required_skills, '[]'), tags = coalesce(tags, '[]'),
         target_branches = coalesce(target_branches, '[]'),
         retry_count = coalesce(retry_count, 0), max_retries = coalesce(max_retries, 2)""",
    """CREATE TABLE task_deps (
         task_id TEXT NOT NULL,
         depends_on TEXT NOT NULL,
         PRIMARY KEY (task_id, depends_on)
       ) WITHOUT ROWID""",
    "CREATE INDEX idx_task_deps_on ON task_deps(depends_on, task_id)",
    """INSERT OR IGNORE INTO task_deps (task_id, depends_on)
         SELECT t.id, d.value FROM tasks AS t, json_each(t.dependencies) AS d
         WHERE json_valid(t.dependencies)""",
    """CREATE INDEX idx_tasks_claim_order ON tasks(priority_rank, created_at, id)
         WHERE status IN ('pending', 'ready')""",
    """CREATE INDEX idx_tasks_claim_expiry ON tasks(claim_expires_at)
         WHERE status IN ('claimed', 'in_progress')""",
    "CREATE INDEX idx_tasks_created ON tasks(created_at)",  # + rowid: creation order,
)

Migration = Callable[[sqlite3.Cursor], None]


def _run(steps: tuple[str, ...]) -> Migration:
    def migrate(cur: sqlite3.Cursor) -> None:
        for sql in steps:
            cur.execute(sql)

    return migrate


_MIGRATIONS: dict[int, Migration] = {
    # from version N to N + 1
    1: _run(_V2_STEPS),
}


def _current_version(cur: sqlite3.Cursor) -> int:
    version = int(cur.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    has_tasks = cur.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'"
    ).fetchone()
    return 1 if has_tasks else 0


def ensure_schema(dbapi_conn: sqlite3.Connection) -> int:
    """Create or upgrade the schema on a raw sqlite3 connection in autocommit mode.

    Returns the version found before any change (0 for a new file). A file
    written by a newer jetpack-beads is refused with ConflictError.
    """
    cur = dbapi_conn.cursor()
    try:
        if _current_version(cur) == SCHEMA_VERSION:
            return SCHEMA_VERSION
        cur.execute("BEGIN IMMEDIATE")
        try:
            found = _current_version(cur)  # again, now that we hold the write lock
            if found > SCHEMA_VERSION:
                raise ConflictError(
                    f"task database has schema version {found}; this jetpack-beads reads "
                    f"up to {SCHEMA_VERSION}: upgrade jetpack-beads"
                )
            if found == 0:
                for sql in SEED_TASKS_DDL.split(";"):
                    if sql.strip():
                        cur.execute(sql)
                version = 1
            else:
                version = found
            while version < SCHEMA_VERSION:
                logger.info("migrating task database schema %d -> %d", version, version + 1)
                _MIGRATIONS[version](cur)
                version += 1
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return found
    finally:
        cur.close()
