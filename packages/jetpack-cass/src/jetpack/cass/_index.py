"""VectorIndex: exact cosine top-k over the file's vectors, cached in process memory.

The whole step (bring the matrix up to date, then score) is part of a read job,
so it runs on a reader thread in the job's snapshot, and neither a first load
of 100,000 vectors nor the matrix product blocks the event loop. Each search
reads ``cass_meta`` (three indexed rows); when ``vector_epoch`` moved it reads
only rows stamped after the cached epoch, and the seq list only when
``vector_count`` shows deletions. Writes of other processes are seen the same
way as this process's own. The matrix is shared by the reader threads (one at
a time).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence

import numpy as np

from jetpack.cass._vectors import FloatMatrix, VectorMatrix, check_vector

__all__ = ["VectorIndex"]

logger = logging.getLogger(__name__)


class VectorIndex:
    """The in-process vector matrix of one store file."""

    def __init__(self) -> None:
        self.full_loads = 0
        """How many times every vector was read (a new process, a new dimension...)."""
        self._matrix: VectorMatrix | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Drop the matrix."""
        with self._lock:
            self._matrix = None

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
        if matrix is not None and matrix.dims == int(dims) and epoch <= matrix.epoch:
            # Up to date; or this snapshot began before another reader's refresh:
            # the newer matrix serves it (rows it cannot see yet are skipped later).
            return matrix
        if matrix is None or matrix.dims != int(dims):
            matrix = VectorMatrix(int(dims))
            self.full_loads += 1
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
                "loaded %d vectors in %.0f ms", len(matrix), (time.perf_counter() - started) * 1000
            )
        matrix.epoch = epoch
        self._matrix = matrix
        return matrix

    def top_k(
        self, conn: sqlite3.Connection, query: Sequence[float] | FloatMatrix, k: int
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ``(seq, cosine)`` pairs, best first (part of a read job).

        ValidationError('embedding') for a vector of another size than the
        store's, a zero vector or non-finite values.
        """
        with self._lock:
            matrix = self._refresh(conn)
            vector = check_vector(query, matrix.dims if matrix else None, "embedding")
            if matrix is None:
                return []
            return matrix.top_k(vector, k)

    def count(self) -> int:
        """Vectors in the matrix (as of the last search)."""
        return 0 if self._matrix is None else len(self._matrix)
