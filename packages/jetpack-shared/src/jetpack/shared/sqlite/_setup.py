"""The SQLite set-up of every local store: connection settings, the lock file, first-time set-up.

- :func:`connect`: every connection a store opens, with the same settings:
  autocommit (jobs send their own ``BEGIN``), the busy timeout, ``synchronous
  = NORMAL`` (in WAL a killed process loses nothing that committed; only a
  power cut can drop the last transactions), foreign keys on, and optionally a
  bigger page cache or ``query_only`` (reader connections).
- :class:`FileLock`: an exclusive ``flock`` on ``<file>.lock`` beside the
  database, behind an in-process lock per file. Writers take it around each
  write transaction, so they queue on the lock (threads of one process wake the
  moment it is free; other processes poll the ``flock`` every 0.1–1 ms) instead
  of in SQLite's busy handler, which sleeps in steps of milliseconds;
  first-time set-up takes it too.
- :func:`prepare_sqlite_file`: creating the file, switching it to WAL and
  creating or migrating the schema must not fail when eight agents start
  together on a fresh project: the WAL switch needs the file to itself, and
  SQLite answers "database is locked" at once rather than waiting. The set-up
  therefore runs under the file lock, so openers queue and the first one does
  the work while the others find it done; where ``fcntl`` is missing (Windows),
  and for whatever still reports busy, it retries with back-off until the busy
  timeout passes.

Standard library only.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

try:  # POSIX only; elsewhere SQLite's own busy handler does the queueing.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock", "connect", "lock_path_for", "prepare_sqlite_file"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_PAUSE_S = 0.005
_LONGEST_PAUSE_S = 0.05
_FIRST_POLL_S = 0.0001
_LONGEST_POLL_S = 0.001


def lock_path_for(path: Path) -> Path:
    """The lock file beside a database: ``<file>.lock``."""
    return path.with_name(path.name + ".lock")


def connect(
    path: Path,
    *,
    busy_timeout_ms: int,
    cache_kib: int | None = None,
    query_only: bool = False,
) -> sqlite3.Connection:
    """A connection with the settings every local store uses (see the module docstring).

    ``check_same_thread`` is off: a connection belongs to one worker thread, but
    is closed from whichever thread shuts the store down.
    """
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if cache_kib is not None:
            conn.execute(f"PRAGMA cache_size = {-int(cache_kib)}")
        if query_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


_LOCAL_LOCKS: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_LOCAL_LOCKS_GUARD = threading.Lock()


def _local_lock(path: Path) -> threading.Lock:
    """The in-process lock of one lock file, shared by every FileLock on it while any lives."""
    key = os.path.realpath(path)
    with _LOCAL_LOCKS_GUARD:
        lock = _LOCAL_LOCKS.get(key)
        if lock is None:
            lock = _LOCAL_LOCKS[key] = threading.Lock()
        return lock


class FileLock:
    """An exclusive lock on one lock file, held around a piece of work.

    Two levels: a ``threading.Lock`` per file inside the process (several
    stores on one database in one process, e.g. one mail bus per agent, queue
    there and wake at once), then an ``flock`` on the file against other
    processes. A killed holder's ``flock`` is dropped by the kernel. Without
    ``fcntl`` only the in-process level remains.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._local = _local_lock(path)

    def open(self) -> None:
        """Open (and create) the lock file."""
        if fcntl is not None and self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def close(self) -> None:
        """Close the lock file (releasing the lock if held)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextmanager
    def held(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the lock for the ``with`` block.

        ``timeout_s`` None waits as long as it takes (the kernel wakes the next
        waiter the moment the lock is free); otherwise the lock is polled for
        up to ``timeout_s`` and ``sqlite3.OperationalError`` ("locked") raised
        after it, as SQLite does when its own busy timeout passes.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._local.acquire(timeout=-1 if timeout_s is None else timeout_s):
            raise sqlite3.OperationalError(
                f"database is locked: {self.path.name} was held in this process "
                f"for more than {timeout_s:g} s"
            )
        try:
            fd = self._fd
            if fd is None or fcntl is None:
                yield
                return
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                _poll_flock(fd, max(deadline - time.monotonic(), 0), self.path)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._local.release()


def _poll_flock(fd: int, timeout_s: float, path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    pause = _FIRST_POLL_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError(
                    f"database is locked: another process held {path.name} "
                    f"for more than {timeout_s:g} s"
                ) from None
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_POLL_S)


def prepare_sqlite_file(
    path: Path,
    setup: Callable[[sqlite3.Connection], T],
    *,
    busy_timeout_ms: int,
    lock_path: Path | None = None,
) -> T:
    """Create the folder and file, switch to WAL and run ``setup(conn)``: one opener at a time.

    ``setup`` gets an autocommit connection (it sends its own ``BEGIN
    IMMEDIATE``) and its result is returned. Busy or locked answers are retried
    with back-off for up to ``busy_timeout_ms``; other sqlite3 errors (and the
    last busy one) propagate unchanged for the caller to translate.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + busy_timeout_ms / 1000
    lock = FileLock(lock_path or lock_path_for(path))
    lock.open()
    try:
        with lock.held():
            pause = _FIRST_PAUSE_S
            while True:
                try:
                    return _set_up(path, setup, busy_timeout_ms)
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() + pause > deadline:
                        raise
                    logger.debug("setting up %s: %s; retrying in %.3f s", path, exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE_S)
    finally:
        lock.close()


def _set_up(path: Path, setup: Callable[[sqlite3.Connection], T], busy_timeout_ms: int) -> T:
    conn = connect(path, busy_timeout_ms=busy_timeout_ms)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - filesystems without WAL support
            logger.warning("could not switch %s to WAL (journal_mode=%s)", path, mode)
        return setup(conn)
    finally:
        conn.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
