"""Schema versioning: a seed-shaped (version 1) file is upgraded in place."""

import json
import sqlite3
from pathlib import Path

import pytest

from jetpack.beads import SCHEMA_VERSION, BeadsAdapter
from jetpack.beads._schema import SEED_TASKS_DDL
from jetpack.shared import TaskStatus
from jetpack.shared.errors import ConflictError


def make_v1(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(SEED_TASKS_DDL)
        insert = (
            "INSERT INTO tasks (id, title, status, priority, dependencies, blockers, "
            "required_skills, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        conn.execute(insert, ("bd-a", "a", "completed", "low", "[]", "[]", "[]", "[]", 1000, 1000))
        conn.execute(
            insert, ("bd-b", "b", "pending", "high", '["bd-a"]', "[]", "[]", None, 2000, 2000)
        )
        conn.execute(
            insert, ("bd-c", "c", "pending", "critical", '["bd-b"]', None, None, None, 3000, 3000)
        )


async def test_new_file_is_wal_at_current_version(store: BeadsAdapter, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_seed_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_v1(path)
    async with BeadsAdapter(path) as store:
        assert [t.id for t in await store.get_ready_tasks()] == ["bd-b"]
        c = await store.get_task("bd-c")
        assert c is not None and c.dependencies == ["bd-b"] and c.tags == [] and c.version == 1
        claimed = await store.claim_next("agent-1")
        assert claimed is not None and claimed.id == "bd-b"
        await store.complete_task("bd-b", "agent-1")
        assert [t.id for t in await store.get_ready_tasks()] == ["bd-c"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        edges = conn.execute("SELECT task_id, depends_on FROM task_deps ORDER BY 1").fetchall()
        assert edges == [("bd-b", "bd-a"), ("bd-c", "bd-b")]
        assert (
            json.loads(conn.execute("SELECT metadata FROM tasks WHERE id='bd-a'").fetchone()[0])
            == {}
        )
    async with BeadsAdapter(path) as again:  # opening a current file changes nothing
        assert (await again.get_stats()).by_status[TaskStatus.COMPLETED] == 2


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with BeadsAdapter(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConflictError, match="schema version"):
        async with BeadsAdapter(path):
            pass
