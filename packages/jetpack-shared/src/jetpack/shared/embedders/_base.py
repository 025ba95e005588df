"""The embedder interface and the input checks every embedder shares.

:class:`Embedder` is ``jetpack.shared.Embedder``, re-exported: a structural,
runtime-checkable :class:`typing.Protocol`. Any object with ``name``,
``dimensions``, ``embed`` and ``aclose`` is an embedder, so a user's own class
needs no base class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from jetpack.shared import Embedder
from jetpack.shared.errors import JetpackError, ValidationError

__all__ = ["Embedder", "EmbedderError", "check_texts", "check_vectors"]


class EmbedderError(JetpackError):
    """The embedding service answered, but not with usable vectors.

    Raised for refused requests (a 4xx other than 401/403/429) and malformed
    answers (wrong count or size of vectors). Retrying the same call does not help.
    """


def check_texts(texts: Sequence[str], *, allow_blank: bool) -> list[str]:
    """Validate an ``embed`` argument and return it as a list.

    A bare ``str`` is refused (it would be embedded character by character).
    With ``allow_blank=False``, an empty or whitespace-only text raises
    :class:`~jetpack.shared.errors.ValidationError` (a ``ValueError``) naming its
    index, instead of being dropped, which would shift every later vector onto
    the wrong row.
    """
    if isinstance(texts, str):
        raise ValidationError("texts", "expected a sequence of strings, got a single str")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise ValidationError(f"texts[{i}]", f"expected str, got {type(text).__name__}")
        if not allow_blank and not text.strip():
            raise ValidationError(
                f"texts[{i}]",
                "is empty or whitespace-only; this embedder cannot embed it "
                "(drop it before calling embed, keeping your rows aligned)",
            )
    return items


def check_vectors(
    vectors: Sequence[Sequence[float]], *, expected: int, dimensions: int, source: str
) -> list[list[float]]:
    """Check that a service returned ``expected`` finite vectors of ``dimensions`` floats."""
    if len(vectors) != expected:
        raise EmbedderError(f"{source} returned {len(vectors)} vectors for {expected} texts")
    out: list[list[float]] = []
    for i, vec in enumerate(vectors):
        if len(vec) != dimensions:
            raise EmbedderError(
                f"{source} returned a vector of {len(vec)} dimensions at row {i}, "
                f"expected {dimensions}"
            )
        row = [float(x) for x in vec]
        if not all(math.isfinite(x) for x in row):
            raise EmbedderError(f"{source} returned a non-finite value at row {i}")
        out.append(row)
    return out
