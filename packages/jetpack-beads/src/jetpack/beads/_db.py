"""The SQLite file behind the store: engine, pragmas, transactions, error mapping.

- WAL journal, ``synchronous=NORMAL`` (a killed process loses nothing that
  committed; only a power cut may drop the last transactions), and a busy
  timeout so concurrent writers wait for each other instead of failing.
- Reads go through SQLAlchemy's async engine (a pool of aiosqlite
  connections), in plain ``BEGIN`` (snapshot) transactions.
- Every write is one job on :class:`~jetpack.beads._writer.Writer`'s thread:
  ``BEGIN IMMEDIATE`` (so a write that reads first holds the write lock from
  its first statement and never fails halfway with a stale snapshot), its
  statements, ``COMMIT`` — one hand-off instead of a driver round trip per
  statement. The writers of one process queue on that one thread before
  asking SQLite for the write lock (SQLite's busy handler sleeps in steps of
  milliseconds, so letting them fight for it would waste most of the time
  sleeping); other processes are kept out by SQLite's lock itself.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import TextClause, event, text
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from jetpack.beads._schema import ensure_schema
from jetpack.beads._writer import Writer
from jetpack.shared.errors import JetpackError
from jetpack.shared.sqlite_errors import translate_sqlite_errors
from jetpack.shared.sqlite_setup import prepare_sqlite_file

__all__ = ["Database", "execute"]

logger = logging.getLogger(__name__)


T = TypeVar("T")
P = ParamSpec("P")


@lru_cache(maxsize=256)
def _text(statement: str) -> TextClause:
    return text(statement)


async def execute(
    conn: AsyncConnection, statement: str, params: Mapping[str, Any]
) -> CursorResult[*tuple[Any, ...]]:
    """Run one read statement of :mod:`jetpack.beads._sql` (its ``text()`` is cached)."""
    return await conn.execute(_text(statement), dict(params))


def _prepare_file(path: Path, busy_timeout_ms: int) -> int:
    """Create the folder and file, switch to WAL and create/upgrade the schema.

    One opener at a time (``jetpack.shared.sqlite_setup``), so many processes
    opening a fresh file together all succeed.
    """
    return prepare_sqlite_file(path, ensure_schema, busy_timeout_ms=busy_timeout_ms)


class Database:
    """One SQLite file opened through SQLAlchemy's async engine and aiosqlite."""

    def __init__(self, path: Path, *, busy_timeout_ms: int, pool_size: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._writer = Writer(path, busy_timeout_ms=busy_timeout_ms)
        self.found_version = 0

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._engine is not None

    async def open(self) -> None:
        """Prepare the file (WAL, schema), start the writer thread and the read engine."""
        with translate_sqlite_errors("task database", self.path):
            self.found_version = await asyncio.to_thread(
                _prepare_file, self.path, self.busy_timeout_ms
            )
        await self._writer.open()
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{self.path}",
            connect_args={"timeout": self.busy_timeout_ms / 1000},
            pool_size=self.pool_size,
            max_overflow=0,
        )
        busy_ms = self.busy_timeout_ms

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # pysqlite would begin lazily, before the first write only: a read
            # of several statements must see one snapshot.
            conn.exec_driver_sql("BEGIN")

        self._engine = engine

    async def close(self) -> None:
        """Stop the writer thread and dispose of the engine and its connections."""
        engine, self._engine = self._engine, None
        await self._writer.close()
        if engine is not None:
            await engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a deferred (snapshot) transaction, rolled back at the end."""
        if self._engine is None:
            raise JetpackError("the task store is not open; use 'async with BeadsAdapter(...)'")
        with translate_sqlite_errors("task database", self.path):
            async with self._engine.connect() as conn:
                yield conn

    async def job(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` as one ``BEGIN IMMEDIATE`` transaction on the writer thread.

        Jobs run one at a time, in the order they were submitted.
        """
        return await self._writer.run(fn, *args, **kwargs)
