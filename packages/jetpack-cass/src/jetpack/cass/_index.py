"""VectorIndex: exact cosine top-k over the file's vectors, cached in process memory.

The whole step (bring the matrix up to date, then score) runs in a worker
thread on a private read-only ``sqlite3`` connection, so neither a first load of
100,000 vectors nor the matrix product blocks the event loop. Each search reads
``cass_meta`` (three indexed rows) in a snapshot transaction; when
``vector_epoch`` moved it reads only rows stamped after the cached epoch, and
the seq list only when ``vector_count`` shows deletions. Writes of other
processes are seen the same way as this process's own.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jetpack.cass._vectors import FloatMatrix, VectorMatrix, check_vector

__all__ = ["VectorIndex"]

logger = logging.getLogger(__name__)


class VectorIndex:
    """The in-process vector matrix of one store file."""

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.full_loads = 0
        """How many times every vector was read (a new process, a new dimension...)."""
        self._conn: sqlite3.Connection | None = None
        self._matrix: VectorMatrix | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection and drop the matrix."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._matrix = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        return self._conn

    def _refresh(self, conn: sqlite3.Connection) -> VectorMatrix | None:
        meta = dict(
            conn.execute(
                "SELECT key, value FROM cass_meta "
                "WHERE key IN ('vector_epoch', 'vector_count', 'dimensions')"
            ).fetchall()
        )
        dims = meta.get("dimensions")
        if dims is None:
            return None
        epoch, count = int(meta["vector_epoch"]), int(meta["vector_count"])
        matrix = self._matrix
        if matrix is None or matrix.dims != int(dims) or epoch < matrix.epoch:
            matrix = VectorMatrix(int(dims))
            self.full_loads += 1
        if epoch == matrix.epoch:
            return matrix
        started = time.perf_counter()
        cursor = conn.execute(
            "SELECT seq, vector FROM memory_vectors WHERE epoch > ? AND dim = ?",
            (matrix.epoch, matrix.dims),
        )
        while rows := cursor.fetchmany(8192):
            matrix.upsert([r[0] for r in rows], [r[1] for r in rows])
        if len(matrix) != count:
            live = conn.execute("SELECT seq FROM memory_vectors").fetchall()
            matrix.retain(np.fromiter((r[0] for r in live), dtype=np.int64, count=len(live)))
        if matrix.epoch < 0:
            logger.debug(
                "loaded %d vectors from %s in %.0f ms",
                len(matrix),
                self.path,
                (time.perf_counter() - started) * 1000,
            )
        matrix.epoch = epoch
        self._matrix = matrix
        return matrix

    def top_k(self, query: Sequence[float] | FloatMatrix, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ``(seq, cosine)`` pairs, best first (blocking: run in a thread).

        ValidationError('embedding') for a vector of another size than the
        store's, a zero vector or non-finite values.
        """
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                matrix = self._refresh(conn)
            finally:
                conn.execute("COMMIT")
            vector = check_vector(query, matrix.dims if matrix else None, "embedding")
            if matrix is None:
                return []
            return matrix.top_k(vector, k)

    def count(self) -> int:
        """Vectors in the matrix (as of the last search)."""
        return 0 if self._matrix is None else len(self._matrix)
