"""The SQLite file behind the store: engine, pragmas, transactions, error mapping.

- WAL journal, ``synchronous=NORMAL`` (a killed process loses nothing that
  committed; only a power cut may drop the last transactions), and a busy
  timeout so concurrent writers wait for each other instead of failing.
- Reads go through SQLAlchemy's async engine (a pool of aiosqlite
  connections), in plain ``BEGIN`` (snapshot) transactions.
- Two writers, each in ``BEGIN IMMEDIATE`` so a write that reads first holds
  the write lock from its first statement and never fails halfway with a
  stale snapshot: graph edits (create, import, update, delete) through one
  long-lived SQLAlchemy connection; the claim lifecycle as one job each on
  :class:`~jetpack.beads._writer.Writer`'s thread (one hand-off instead of a
  driver round trip per statement).
- Writers of one process queue on one ``asyncio.Lock`` before asking SQLite
  for the write lock: SQLite's busy handler sleeps in steps of milliseconds,
  so letting coroutines of the same process fight for it would waste most of
  the time sleeping. Other processes are kept out by SQLite's lock itself.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from jetpack.beads._errors import translate_errors
from jetpack.beads._schema import ensure_schema
from jetpack.beads._writer import Writer
from jetpack.shared.errors import JetpackError

__all__ = ["Database"]

logger = logging.getLogger(__name__)

_BEGIN_OPTION = "jetpack_begin"

T = TypeVar("T")
P = ParamSpec("P")


def _prepare_file(path: Path, busy_timeout_ms: int) -> int:
    """Create the folder, switch the file to WAL and create/upgrade the schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("could not switch %s to WAL (journal_mode=%s)", path, mode)
        return ensure_schema(conn)
    finally:
        conn.close()


class Database:
    """One SQLite file opened through SQLAlchemy's async engine and aiosqlite."""

    def __init__(self, path: Path, *, busy_timeout_ms: int, pool_size: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._writer: AsyncConnection | None = None
        self._write_lock: asyncio.Lock | None = None
        self._thread_writer = Writer(path, busy_timeout_ms=busy_timeout_ms)
        self.found_version = 0

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._engine is not None

    async def open(self) -> None:
        """Prepare the file (WAL, schema) and start the engine."""
        with translate_errors(self.path):
            self.found_version = await asyncio.to_thread(
                _prepare_file, self.path, self.busy_timeout_ms
            )
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{self.path}",
            connect_args={"timeout": self.busy_timeout_ms / 1000},
            pool_size=self.pool_size,
            max_overflow=0,
        )
        busy_ms = self.busy_timeout_ms

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            # Every transaction sends its own BEGIN (see _on_begin); should
            # pysqlite ever begin implicitly, it is IMMEDIATE too.
            dbapi_conn.isolation_level = "IMMEDIATE"
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

        self._engine = engine
        with translate_errors(self.path):
            writer = await engine.connect()
        self._writer = await writer.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        await self._thread_writer.open()
        self._write_lock = asyncio.Lock()

    async def close(self) -> None:
        """Dispose of the engine and its connections."""
        engine, writer = self._engine, self._writer
        self._engine, self._writer = None, None
        await self._thread_writer.close()
        if writer is not None:
            await writer.close()
        if engine is not None:
            await engine.dispose()

    def _require(self) -> tuple[AsyncEngine, AsyncConnection, asyncio.Lock]:
        if self._engine is None or self._writer is None or self._write_lock is None:
            raise JetpackError("the task store is not open; use 'async with BeadsAdapter(...)'")
        return self._engine, self._writer, self._write_lock

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a deferred (snapshot) transaction, rolled back at the end."""
        engine, _, _ = self._require()
        with translate_errors(self.path):
            async with engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error.

        Writes go through one long-lived connection (they are serialised by the
        lock anyway), which saves a pool checkout and reset per write.
        """
        _, writer, lock = self._require()
        async with lock:
            with translate_errors(self.path):
                async with writer.begin():
                    yield writer

    async def job(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` as one ``BEGIN IMMEDIATE`` transaction on the writer thread."""
        _, _, lock = self._require()
        async with lock:
            return await self._thread_writer.run(fn, *args, **kwargs)
