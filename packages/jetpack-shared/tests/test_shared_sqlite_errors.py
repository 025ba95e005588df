from __future__ import annotations

import sqlite3

import pytest

from jetpack.shared.errors import ConflictError, JetpackError, UnavailableError
from jetpack.shared.sqlite_errors import translate_sqlite_errors


class Wrapped(Exception):
    """Shaped like SQLAlchemy's DBAPIError: the driver error in ``.orig``."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed"), ConflictError),
        (sqlite3.OperationalError("database is locked"), UnavailableError),
        (sqlite3.DatabaseError("file is not a database"), JetpackError),
        (Wrapped(sqlite3.OperationalError("database is locked")), UnavailableError),
    ],
)
def test_sqlite_errors_become_jetpack_errors(error: Exception, kind: type[JetpackError]) -> None:
    with pytest.raises(kind) as info, translate_sqlite_errors("task database", "/x/beads.db"):
        raise error
    assert info.value.__cause__ is error
    assert "task database /x/beads.db" in str(info.value)
    assert UnavailableError("x").retryable


def test_real_locked_file_is_unavailable(tmp_path: object) -> None:
    path = f"{tmp_path}/t.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    with pytest.raises(UnavailableError), translate_sqlite_errors("store", path):
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), translate_sqlite_errors("store", "p"):
        raise KeyError("not ours")
