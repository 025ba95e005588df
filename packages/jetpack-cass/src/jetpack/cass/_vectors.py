"""Vectors: float32 BLOB codec, checks, and the in-process matrix for exact top-k.

:class:`VectorMatrix` holds every stored vector of the store, L2-normalised, in
one contiguous float32 matrix, so a semantic search is one matrix-vector
product and an ``argpartition`` (exact, no approximate index). It is kept in
step with the file by ``cass_meta.vector_epoch``: each search reads the epoch
(one indexed row); when it moved, only rows written since (``epoch >`` the
cached one) are read, and the seq list is re-read only when the vector count
says rows were deleted. Other processes' writes are seen the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from jetpack.shared import MAX_EMBEDDING_DIMENSIONS
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import float32_problem

__all__ = [
    "FloatMatrix",
    "VectorMatrix",
    "check_vector",
    "from_blob",
    "to_blob",
]

FloatMatrix = npt.NDArray[np.float32]


def check_vector(
    values: Sequence[float] | FloatMatrix, dims: int | None, field: str
) -> FloatMatrix:
    """A finite, non-zero float32 vector of ``dims`` values, or ValidationError(field)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise ValidationError(field, "must be a sequence of numbers")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValidationError(field, "must be a sequence of numbers") from error
    if array.ndim != 1 or array.size == 0:
        raise ValidationError(field, "must be a non-empty flat list of numbers")
    if array.size > MAX_EMBEDDING_DIMENSIONS:
        raise ValidationError(field, f"has more than {MAX_EMBEDDING_DIMENSIONS} dimensions")
    if dims is not None and array.size != dims:
        raise ValidationError(field, f"has {array.size} dimensions; this store uses {dims}")
    if not np.isfinite(array).all():
        raise ValidationError(field, "must hold finite numbers only")
    # The shared rule: no length beyond float32's reach, nothing that rounds to zero.
    with np.errstate(over="ignore"):  # an overflow is the answer here, not a fault
        norm = float(np.linalg.norm(array))
        vector = array.astype(np.float32)
    problem = float32_problem(norm, bool(array.any()), bool(vector.any()))
    if problem:
        raise ValidationError(field, problem)
    return vector


def to_blob(vector: FloatMatrix) -> bytes:
    """Little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes, dims: int) -> FloatMatrix:
    """Inverse of :func:`to_blob`."""
    return np.frombuffer(blob, dtype="<f4", count=dims).astype(np.float32)


def _normalise(rows: FloatMatrix) -> FloatMatrix:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: FloatMatrix = (rows / norms).astype(np.float32, copy=False)
    return out


class VectorMatrix:
    """Normalised vectors by seq, with room to grow (capacity doubles)."""

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.epoch = -1
        self._rows: FloatMatrix = np.zeros((0, dims), dtype=np.float32)
        self._seqs: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._index: dict[int, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def seqs(self) -> npt.NDArray[np.int64]:
        """Seqs of the live rows, in row order."""
        return self._seqs[: self._size]

    def upsert(self, seqs: Sequence[int], blobs: Sequence[bytes]) -> None:
        """Add or replace rows."""
        if not seqs:
            return
        block = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(seqs), self.dims)
        block = _normalise(block.astype(np.float32))
        fresh: list[int] = []
        for i, seq in enumerate(seqs):
            at = self._index.get(seq)
            if at is None:
                fresh.append(i)
            else:
                self._rows[at] = block[i]
        if not fresh:
            return
        need = self._size + len(fresh)
        if need > self._rows.shape[0]:
            capacity = max(need + need // 4, 2 * self._rows.shape[0], 1024)
            rows = np.zeros((capacity, self.dims), dtype=np.float32)
            rows[: self._size] = self._rows[: self._size]
            ids = np.zeros(capacity, dtype=np.int64)
            ids[: self._size] = self._seqs[: self._size]
            self._rows, self._seqs = rows, ids
        picked = np.asarray(fresh, dtype=np.int64)
        self._rows[self._size : need] = block[picked]
        self._seqs[self._size : need] = np.asarray(seqs, dtype=np.int64)[picked]
        for offset, i in enumerate(fresh):
            self._index[int(seqs[i])] = self._size + offset
        self._size = need

    def retain(self, live: npt.NDArray[np.int64]) -> None:
        """Drop rows whose seq is not in ``live``."""
        keep = np.isin(self.seqs, live)
        if keep.all():
            return
        count = int(keep.sum())
        self._rows[:count] = self._rows[: self._size][keep]
        self._seqs[:count] = self._seqs[: self._size][keep]
        self._size = count
        self._index = {int(s): i for i, s in enumerate(self._seqs[:count])}

    def top_k(self, query: FloatMatrix, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (seq, cosine) pairs, best first; ties by older seq."""
        if self._size == 0:
            return []
        unit = query / np.linalg.norm(query)
        scores = self._rows[: self._size] @ unit.astype(np.float32)
        k = min(k, self._size)
        whole = k >= self._size
        part = np.arange(self._size) if whole else np.argpartition(-scores, k - 1)[:k]
        order = part[np.lexsort((self._seqs[part], -scores[part]))]
        return [(int(self._seqs[i]), float(scores[i])) for i in order]
