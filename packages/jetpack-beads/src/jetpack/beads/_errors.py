"""sqlite3 / SQLAlchemy errors become Jetpack errors at the store's boundary."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import exc

from jetpack.shared.errors import ConflictError, JetpackError, UnavailableError

__all__ = ["translate_errors"]


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 / SQLAlchemy errors into Jetpack errors, chained with ``from``."""
    try:
        yield
    except JetpackError:
        raise
    except exc.IntegrityError as error:
        raise ConflictError(f"constraint failed in {path}: {error.orig}") from error
    except exc.OperationalError as error:
        raise UnavailableError(f"task database {path} unavailable: {error.orig}") from error
    except exc.SQLAlchemyError as error:
        raise JetpackError(f"task database {path} failed: {error}") from error
    except sqlite3.IntegrityError as error:
        raise ConflictError(f"constraint failed in {path}: {error}") from error
    except sqlite3.OperationalError as error:
        raise UnavailableError(f"task database {path} unavailable: {error}") from error
    except sqlite3.Error as error:
        raise JetpackError(f"task database {path} failed: {error}") from error
