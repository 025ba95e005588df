"""Database: one store file, a writer thread and reader threads; every call is one job.

A job is a plain function ``fn(conn, *args)`` of a stdlib ``sqlite3``
connection. :meth:`Database.write` runs it on the store's one writer thread as
one transaction: the file lock (:class:`~jetpack.shared.sqlite.FileLock`, so
writers of every process queue in the kernel), ``BEGIN IMMEDIATE`` (so a write
that reads first holds the write lock from its first statement and never fails
halfway on a stale snapshot), the job, ``COMMIT`` — rolled back if the job
raises. :meth:`Database.read` runs it on one of a few reader threads inside a
plain ``BEGIN`` (one snapshot for all its statements) on a ``query_only``
connection. Either way the event loop hands the whole job to a thread once and
gets the result back once, instead of one round trip per statement; writes of
one process queue on the one writer thread (pipelined: the next job starts
while the loop takes the previous result), other processes wait on the lock.
sqlite3 errors become Jetpack errors here, chained with ``from``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from sqlite3 import Connection
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from jetpack.shared.errors import UnavailableError
from jetpack.shared.sqlite._errors import translate_sqlite_errors
from jetpack.shared.sqlite._setup import FileLock, connect, lock_path_for, prepare_sqlite_file

__all__ = ["Database", "KeepChanges"]

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")


class KeepChanges(Exception):
    """Raised by a write job to commit what it wrote and then raise ``error`` to the caller.

    E.g. a holder acting on a lapsed claim gets a ConflictError, but the sweep
    that put the task back in the queue must stay: a rollback would hand the
    claim back to an agent that was told it lost it.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Database(Generic[S]):
    """One store file: prepared once on open, then read and written through jobs.

    Args:
        path: the database file; its folder is created on open.
        store: what the file holds, for error messages ("task database").
        setup: creates or migrates the schema (``setup(conn)``, its own
            ``BEGIN IMMEDIATE``); run on open under the file lock, its result
            is what :meth:`open` returns.
        busy_timeout_ms: how long a write waits for another process's lock.
        readers: reader threads (and connections), opened as reads need them.
        cache_kib: page cache per connection, when the default 2 MiB is too small.
    """

    def __init__(
        self,
        path: Path,
        *,
        store: str,
        setup: Callable[[Connection], S],
        busy_timeout_ms: int,
        readers: int = 4,
        cache_kib: int | None = None,
    ) -> None:
        self.path = path
        self.store = store
        self.busy_timeout_ms = busy_timeout_ms
        self.readers = readers
        self._setup = setup
        self._cache_kib = cache_kib
        self._lock = FileLock(lock_path_for(path))
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._write_conn: Connection | None = None
        self._read_conns: list[Connection] = []
        self._read_local = threading.local()
        self._conns_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, store={self.store!r})"

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._writer is not None

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> S:
        """Prepare the file (folder, WAL, schema), then start the threads; ``setup``'s result."""
        if self._writer is not None:
            raise UnavailableError(f"the {self.store} {self.path} is already open")
        with translate_sqlite_errors(self.store, self.path):
            found = await asyncio.to_thread(
                prepare_sqlite_file, self.path, self._setup, busy_timeout_ms=self.busy_timeout_ms
            )
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"jetpack-{self.path.stem}-w")
        self._reader = ThreadPoolExecutor(
            self.readers, thread_name_prefix=f"jetpack-{self.path.stem}-r"
        )
        try:
            with translate_sqlite_errors(self.store, self.path):
                await asyncio.get_running_loop().run_in_executor(self._writer, self._start_writer)
        except BaseException:
            await self.close()
            raise
        return found

    def _start_writer(self) -> None:
        self._lock.open()
        self._write_conn = connect(
            self.path, busy_timeout_ms=self.busy_timeout_ms, cache_kib=self._cache_kib
        )

    async def close(self) -> None:
        """Stop the threads and close every connection (idempotent); the file can be reopened."""
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if writer is not None:
            await asyncio.get_running_loop().run_in_executor(writer, self._stop_writer)
            writer.shutdown(wait=True)
        if reader is not None:
            await asyncio.to_thread(reader.shutdown, wait=True)
        with self._conns_lock:
            conns, self._read_conns = self._read_conns, []
        for conn in conns:
            conn.close()
        self._read_local = threading.local()

    def _stop_writer(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            conn.close()
        self._lock.close()

    # -- jobs ------------------------------------------------------------------

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` as one write transaction on the writer thread.

        Committed if ``fn`` returns, rolled back if it raises (committed, then
        the wrapped error raised, for :class:`KeepChanges`). Jobs run one at a
        time, in the order they were submitted.
        """
        executor = self._require(self._writer)
        job = functools.partial(self._write_job, fn, *args, **kwargs)
        with translate_sqlite_errors(self.store, self.path):
            return await asyncio.get_running_loop().run_in_executor(executor, job)

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one snapshot (``BEGIN`` … ``COMMIT``) on a reader thread."""
        executor = self._require(self._reader)
        job = functools.partial(self._read_job, fn, *args, **kwargs)
        with translate_sqlite_errors(self.store, self.path):
            return await asyncio.get_running_loop().run_in_executor(executor, job)

    def _require(self, executor: ThreadPoolExecutor | None) -> ThreadPoolExecutor:
        if executor is None:
            raise UnavailableError(f"the {self.store} {self.path} is not open; use 'async with'")
        return executor

    def _write_job(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        conn = self._write_conn
        if conn is None:
            raise UnavailableError(f"the {self.store} {self.path} is closed")
        with self._lock.held(self.busy_timeout_ms / 1000):
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

    def _read_job(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        conn: Connection | None = getattr(self._read_local, "conn", None)
        if conn is None:
            conn = connect(
                self.path,
                busy_timeout_ms=self.busy_timeout_ms,
                cache_kib=self._cache_kib,
                query_only=True,
            )
            self._read_local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        conn.execute("BEGIN")
        try:
            result = fn(conn, *args, **kwargs)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
