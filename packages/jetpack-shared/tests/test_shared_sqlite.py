from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from jetpack.shared.errors import ConflictError, JetpackError, UnavailableError
from jetpack.shared.sqlite import (
    Database,
    FileLock,
    KeepChanges,
    lock_path_for,
    translate_sqlite_errors,
)
from jetpack.shared.testing import Child, ChildLink


def schema(conn: sqlite3.Connection) -> int:
    conn.execute("BEGIN IMMEDIATE")
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    return found


def put(conn: sqlite3.Connection, key: str, value: int) -> int:
    conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key, value))
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


def get(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT v FROM t WHERE k = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def db_at(path: Path, **options: int) -> Database[int]:
    return Database(path, store="test database", setup=schema, busy_timeout_ms=5_000, **options)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed"), ConflictError),
        (sqlite3.OperationalError("database is locked"), UnavailableError),
        (sqlite3.DatabaseError("file is not a database"), JetpackError),
    ],
)
def test_sqlite_errors_become_jetpack_errors(error: Exception, kind: type[JetpackError]) -> None:
    with pytest.raises(kind) as info, translate_sqlite_errors("task database", "/x/beads.db"):
        raise error
    assert info.value.__cause__ is error
    assert "task database /x/beads.db" in str(info.value)
    assert UnavailableError("x").retryable


def test_real_locked_file_is_unavailable(tmp_path: object) -> None:
    path = f"{tmp_path}/t.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    with pytest.raises(UnavailableError), translate_sqlite_errors("store", path):
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), translate_sqlite_errors("store", "p"):
        raise KeyError("not ours")


async def test_open_prepares_the_file_and_jobs_read_and_write(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.db"
    db = db_at(path)
    assert await db.open() == 0  # setup's result: the version it found
    try:
        assert await db.write(put, "a", 1) == 1
        assert await db.read(get, "a") == 1
        assert await db.read(get, "nope") is None
    finally:
        await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = db_at(path)
    assert await again.open() == 1  # already set up
    try:
        assert await again.read(get, "a") == 1
    finally:
        await again.close()


async def test_a_failing_write_job_changes_nothing(tmp_path: Path) -> None:
    db = db_at(tmp_path / "t.db")
    await db.open()
    try:
        await db.write(put, "a", 1)

        def two_then_fail(conn: sqlite3.Connection) -> None:
            put(conn, "b", 2)
            put(conn, "a", 3)  # duplicate key

        with pytest.raises(ConflictError) as info:
            await db.write(two_then_fail)
        assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
        assert await db.read(get, "b") is None
    finally:
        await db.close()


async def test_keep_changes_commits_then_raises(tmp_path: Path) -> None:
    db = db_at(tmp_path / "t.db")
    await db.open()
    try:

        def sweep_then_refuse(conn: sqlite3.Connection) -> None:
            put(conn, "swept", 1)
            raise KeepChanges(ConflictError("you lost it"))

        with pytest.raises(ConflictError, match="you lost it"):
            await db.write(sweep_then_refuse)
        assert await db.read(get, "swept") == 1
    finally:
        await db.close()


async def test_readers_cannot_write_and_see_one_snapshot(tmp_path: Path) -> None:
    db = db_at(tmp_path / "t.db")
    await db.open()
    try:
        with pytest.raises(UnavailableError, match="readonly"):
            await db.read(put, "x", 1)
        await db.write(put, "a", 1)
        entered, release = threading.Event(), threading.Event()

        def slow_read(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
            first = get(conn, "a")
            entered.set()
            release.wait(30)
            return first, get(conn, "b")

        reading = asyncio.ensure_future(db.read(slow_read))
        await asyncio.to_thread(entered.wait, 30)
        await db.write(put, "b", 2)  # committed while the read is in its snapshot
        release.set()
        assert await reading == (1, None)
        assert await db.read(get, "b") == 2
    finally:
        await db.close()


async def test_closed_database_is_unavailable(tmp_path: Path) -> None:
    db = db_at(tmp_path / "t.db")
    with pytest.raises(UnavailableError, match="not open"):
        await db.read(get, "a")
    await db.open()
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(UnavailableError, match="not open"):
        await db.write(put, "a", 1)


async def test_two_databases_on_one_file_write_in_turn(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    one, two = db_at(path), db_at(path)
    await one.open()
    await two.open()
    try:

        def add(conn: sqlite3.Connection, key: str) -> None:
            # read then write in one transaction: a lost update would show as a wrong count
            count = int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
            put(conn, key, count)

        pairs = [(db, f"{name}{i}") for i in range(50) for name, db in (("a", one), ("b", two))]
        await asyncio.gather(*(db.write(add, key) for db, key in pairs))
        values = await one.read(lambda conn: [r[0] for r in conn.execute("SELECT v FROM t")])
        assert sorted(values) == list(range(100))
    finally:
        await one.close()
        await two.close()


async def hold_the_lock(link: ChildLink, lock_path: str) -> None:
    """In another process: hold the lock file until told to stop."""
    lock = FileLock(Path(lock_path))
    lock.open()
    with lock.held():
        await link.ready()
        await link.until_stopped()
    lock.close()


async def test_a_write_waits_for_another_process_then_times_out(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    quick = Database(path, store="test database", setup=schema, busy_timeout_ms=300)
    patient = db_at(path)
    await quick.open()
    await patient.open()
    try:
        with Child(hold_the_lock, str(lock_path_for(path))) as holder:
            await asyncio.to_thread(holder.wait_ready)
            holder.go()  # it holds the flock from here until stopped
            with pytest.raises(UnavailableError, match="another process"):
                await quick.write(put, "a", 1)
            waiting = asyncio.ensure_future(patient.write(put, "b", 2))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            holder.stop()
            await asyncio.to_thread(holder.result)
            assert await waiting == 1  # went through once the lock was free
        assert await quick.read(get, "a") is None
    finally:
        await quick.close()
        await patient.close()


async def test_a_write_waits_for_another_store_of_this_process(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    quick = Database(path, store="test database", setup=schema, busy_timeout_ms=300)
    patient = db_at(path)
    await quick.open()
    await patient.open()
    other = FileLock(lock_path_for(path))  # another store on the same file, same process
    other.open()
    try:
        with other.held():
            with pytest.raises(UnavailableError, match="in this process"):
                await quick.write(put, "a", 1)
            waiting = asyncio.ensure_future(patient.write(put, "b", 2))
            await asyncio.sleep(0.05)
            assert not waiting.done()
        assert await waiting == 1
    finally:
        other.close()
        await quick.close()
        await patient.close()
