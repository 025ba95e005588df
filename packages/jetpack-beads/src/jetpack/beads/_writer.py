"""One stdlib ``sqlite3`` connection on one worker thread: a whole write is one job.

Through SQLAlchemy's aiosqlite adapter every statement, ``BEGIN`` and
``COMMIT`` is a round trip between the event loop and the driver thread
(~100 µs each), which made a claim cost ~0.6 ms. The claim lifecycle (claim,
renew, start, release, complete, fail, lapsed-claim sweep) instead runs as a
single function on this thread: ``BEGIN IMMEDIATE``, its statements (the SQL
text of :mod:`jetpack.beads._sql`, the same the SQLAlchemy side runs), ``COMMIT``
— one hand-off to the thread and one back.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from jetpack.shared.errors import JetpackError
from jetpack.shared.sqlite_errors import translate_sqlite_errors

__all__ = ["KeepChanges", "Writer"]

T = TypeVar("T")
P = ParamSpec("P")


class KeepChanges(Exception):
    """Raised by a job to commit what it wrote and then raise ``error`` to the caller.

    A holder acting on a lapsed claim gets a ConflictError, but the sweep that
    put the task back in the queue must stay: a rollback would hand the claim
    back to an agent that was told it lost it.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Writer:
    """The worker thread and its connection (autocommit mode; jobs send ``BEGIN IMMEDIATE``)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Start the thread and connect (the file is already in WAL mode with its schema)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jetpack-beads")
        try:
            with translate_sqlite_errors("task database", self.path):
                await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,  # closed from the loop if the thread is gone
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        self._conn = conn

    async def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        executor.shutdown(wait=True)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def run(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` in one ``BEGIN IMMEDIATE`` transaction on the thread.

        Committed if ``fn`` returns, rolled back if it raises; sqlite3 errors
        become Jetpack errors.
        """
        if self._executor is None:
            raise JetpackError("the task store is not open; use 'async with BeadsAdapter(...)'")
        job = functools.partial(self._transaction, fn, *args, **kwargs)
        with translate_sqlite_errors("task database", self.path):
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _transaction(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        conn = self._conn
        if conn is None:
            raise JetpackError("the task store is closed")
        conn.execute("BEGIN IMMEDIATE")
        keep: KeepChanges | None = None
        try:
            result = fn(conn, *args, **kwargs)
        except KeepChanges as signal:
            keep = signal
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if keep is not None:
            raise keep.error
        return result
