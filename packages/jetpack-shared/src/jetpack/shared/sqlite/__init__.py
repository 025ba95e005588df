"""What every local SQLite store is built on, written once (standard library only).

- :class:`Database`: one store file, a writer thread and reader threads; a
  store's methods run plain functions of a ``sqlite3`` connection ("jobs"):
  ``await db.write(job, ...)`` is one ``BEGIN IMMEDIATE`` transaction under the
  file lock, ``await db.read(job, ...)`` one snapshot. :class:`KeepChanges`
  lets a write job commit and still raise.
- :func:`connect`, :class:`FileLock`, :func:`prepare_sqlite_file`: the
  connection settings (WAL, ``synchronous = NORMAL``, busy timeout), the lock
  file beside the database, and first-time set-up safe when many processes open
  a fresh file at once.
- :func:`translate_sqlite_errors`: sqlite3 errors become Jetpack errors.

::

    db = Database(path, store="task database", setup=ensure_schema, busy_timeout_ms=30_000)
    await db.open()
    task = await db.write(create_task, inputs)  # def create_task(conn, inputs) -> Task
    ready = await db.read(ready_tasks, 100)  # def ready_tasks(conn, limit) -> list[Task]
    await db.close()
"""

from jetpack.shared.sqlite._database import Database, KeepChanges
from jetpack.shared.sqlite._errors import sqlite_error, translate_sqlite_errors
from jetpack.shared.sqlite._setup import FileLock, connect, lock_path_for, prepare_sqlite_file

__all__ = [
    "Database",
    "FileLock",
    "KeepChanges",
    "connect",
    "lock_path_for",
    "prepare_sqlite_file",
    "sqlite_error",
    "translate_sqlite_errors",
]
