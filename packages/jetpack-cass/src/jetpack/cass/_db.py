"""The SQLite file behind the store: engine, pragmas, transactions, error mapping.

- WAL journal, ``synchronous=NORMAL`` and a busy timeout, so the CLI, each
  agent's MCP server and a second CLI can share one file.
- pysqlite's own transaction handling is off; the engine's ``begin`` event
  sends ``BEGIN`` for reads and ``BEGIN IMMEDIATE`` for writes, so a write that
  reads first (id checks, counts) holds the write lock from its first statement.
- Writers of one process queue on an ``asyncio.Lock`` and share one
  connection; other processes are kept out by SQLite's lock.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from jetpack.cass._schema import ensure_schema, ensure_trigram, has_trigram
from jetpack.shared.errors import JetpackError
from jetpack.shared.sqlite_errors import translate_sqlite_errors
from jetpack.shared.sqlite_setup import prepare_sqlite_file

__all__ = ["Database"]

logger = logging.getLogger(__name__)

_BEGIN_OPTION = "jetpack_begin"


def _prepare_file(path: Path, busy_timeout_ms: int, trigram: bool) -> bool:
    """Create the folder and file, switch to WAL, create/upgrade the schema; True if trigram.

    One opener at a time (``jetpack.shared.sqlite_setup``), so many processes
    opening a fresh file together all succeed.
    """

    def setup(conn: sqlite3.Connection) -> bool:
        ensure_schema(conn)
        if trigram:
            ensure_trigram(conn)
        return has_trigram(conn)

    return prepare_sqlite_file(path, setup, busy_timeout_ms=busy_timeout_ms)


class Database:
    """One SQLite file opened through SQLAlchemy's async engine and aiosqlite."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 10_000,
        pool_size: int = 4,
        trigram: bool = False,
    ) -> None:
        self.path = path
        self.trigram = trigram
        self.has_trigram = False
        self.busy_timeout_ms = busy_timeout_ms
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._writer: AsyncConnection | None = None
        self._write_lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._engine is not None

    async def open(self) -> None:
        """Prepare the file (WAL, schema) and start the engine."""
        with translate_sqlite_errors("memory database", self.path):
            self.has_trigram = await asyncio.to_thread(
                _prepare_file, self.path, self.busy_timeout_ms, self.trigram
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
            dbapi_conn.isolation_level = None  # we send BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

        self._engine = engine
        try:
            with translate_sqlite_errors("memory database", self.path):
                writer = await engine.connect()
        except BaseException:
            await engine.dispose()
            self._engine = None
            raise
        self._writer = await writer.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._write_lock = asyncio.Lock()

    async def close(self) -> None:
        """Dispose of the engine and its connections."""
        engine, writer = self._engine, self._writer
        self._engine, self._writer = None, None
        if writer is not None:
            await writer.close()
        if engine is not None:
            await engine.dispose()

    def _require(self) -> tuple[AsyncEngine, AsyncConnection, asyncio.Lock]:
        if self._engine is None or self._writer is None or self._write_lock is None:
            raise JetpackError("the memory store is not open; use 'async with CASSAdapter(...)'")
        return self._engine, self._writer, self._write_lock

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a deferred (snapshot) transaction, rolled back at the end."""
        engine, _, _ = self._require()
        with translate_sqlite_errors("memory database", self.path):
            async with engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        _, writer, lock = self._require()
        async with lock:
            with translate_sqlite_errors("memory database", self.path):
                async with writer.begin():
                    yield writer
