"""One SQLite connection driven by one worker thread, so the event loop never blocks.

Every call runs ``fn(conn, *args)`` on the bus's own thread. Writes go through
:meth:`Database.transaction`: an advisory ``flock`` on ``mail.lock`` (so writers
of all processes queue in the kernel and wake the moment the lock is free,
instead of SQLite's sleep-and-retry busy handler), then ``BEGIN IMMEDIATE``.
sqlite3 errors become Jetpack errors here, chained with ``from``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from jetpack.mcp_mail._schema import configure, migrate
from jetpack.shared.errors import UnavailableError
from jetpack.shared.sqlite_errors import translate_sqlite_errors
from jetpack.shared.sqlite_setup import lock_path_for, prepare_sqlite_file

try:  # POSIX only; elsewhere SQLite's own busy handler does the queueing.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Database"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


class Database:
    """The mail store file, opened by one bus."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.lock_path = lock_path_for(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    async def open(self) -> None:
        """Start the worker thread, open the file and create or migrate the schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jetpack-mail-db")
        try:
            await self.call(self._open_sync)
        except BaseException:
            await self.close()
            raise

    def _open_sync(self, _conn: sqlite3.Connection | None) -> None:
        # File, WAL and schema: one opener at a time, under the same lock file.
        prepare_sqlite_file(
            self.path, migrate, busy_timeout_ms=self._busy_timeout_ms, lock_path=self.lock_path
        )
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000
        )
        try:
            configure(conn, busy_timeout_ms=self._busy_timeout_ms)
            if fcntl is not None:
                self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_sync)
        executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, *args)`` on the worker thread; sqlite3 errors become Jetpack errors."""
        if self._executor is None:
            raise UnavailableError(f"mail store {self.path} is not open")
        loop = asyncio.get_running_loop()
        job = functools.partial(self._guarded, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, job)

    def _guarded(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with translate_sqlite_errors("mail store", self.path):
            return fn(self._conn, *args, **kwargs)

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        if self._lock_fd is None or fcntl is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), on the worker thread only."""
        with self._flock():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
