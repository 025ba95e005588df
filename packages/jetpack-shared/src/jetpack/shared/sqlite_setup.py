"""First-time set-up of a local store's SQLite file, safe when many processes open it at once.

Creating the file, switching it to WAL and creating or migrating the schema
must not fail when eight agents start together on a fresh project: the WAL
switch needs the file to itself, and SQLite answers "database is locked" at once
rather than waiting. :func:`prepare_sqlite_file` therefore runs that set-up under
an exclusive ``flock`` on a lock file beside the database (``<file>.lock``), so
openers queue in the kernel and the first one does the work while the others
find it done; where ``fcntl`` is missing (Windows), and for whatever still reports
busy, it retries with back-off until the busy timeout passes. Every local store
(tasks, mail, memory) opens through it. Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

try:  # POSIX only; elsewhere the bounded retries alone do the queueing.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["lock_path_for", "prepare_sqlite_file"]

_HAS_FLOCK: bool = fcntl is not None

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_PAUSE_S = 0.005
_LONGEST_PAUSE_S = 0.05


def lock_path_for(path: Path) -> Path:
    """The lock file beside a database: ``<file>.lock``."""
    return path.with_name(path.name + ".lock")


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
    with _exclusive(lock_path or lock_path_for(path)):
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


def _set_up(path: Path, setup: Callable[[sqlite3.Connection], T], busy_timeout_ms: int) -> T:
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - filesystems without WAL support
            logger.warning("could not switch %s to WAL (journal_mode=%s)", path, mode)
        return setup(conn)
    finally:
        conn.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``.

    Blocking: the kernel wakes the next opener the moment the lock is free. The
    holder's work is bounded (each SQLite statement by the busy timeout, the
    retries by the deadline), and a killed holder's lock is dropped by the kernel.
    """
    if not _HAS_FLOCK:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
