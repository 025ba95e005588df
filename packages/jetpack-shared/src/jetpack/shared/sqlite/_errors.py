"""sqlite3 errors become Jetpack errors at a local store's boundary.

- a constraint failure (``IntegrityError``) → :class:`ConflictError`;
- a locked, busy or unreachable file (``OperationalError``) → :class:`UnavailableError`
  (a retry can help);
- any other sqlite3 error → :class:`JetpackError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jetpack.shared.errors import ConflictError, JetpackError, UnavailableError

__all__ = ["sqlite_error", "translate_sqlite_errors"]


def sqlite_error(error: sqlite3.Error, store: str, path: Path | str) -> JetpackError:
    """The Jetpack error for one sqlite3 error of ``store`` (e.g. "task database")."""
    if isinstance(error, sqlite3.IntegrityError):
        return ConflictError(f"constraint failed in {store} {path}: {error}")
    if isinstance(error, sqlite3.OperationalError):
        return UnavailableError(f"{store} {path} unavailable: {error}")
    return JetpackError(f"{store} {path} failed: {error}")


@contextmanager
def translate_sqlite_errors(store: str, path: Path | str) -> Iterator[None]:
    """Re-raise sqlite3 errors as Jetpack errors, chained with ``from``."""
    try:
        yield
    except sqlite3.Error as error:
        raise sqlite_error(error, store, path) from error
