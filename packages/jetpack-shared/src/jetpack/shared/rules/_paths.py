"""Lease paths: normalisation and overlap between paths and glob patterns.

Patterns use ``*`` (any run of characters within one segment), ``?`` (one
character) and ``**`` (any number of whole segments, as a segment of its own).
Two patterns overlap when some path matches both; two exclusive leases on
overlapping patterns never coexist.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache

from jetpack.shared.errors import ValidationError

__all__ = ["MAX_PATH_CHARS", "is_glob", "normalize_lease_path", "paths_overlap"]

MAX_PATH_CHARS = 1024


def is_glob(path: str) -> bool:
    """True when ``path`` holds a wildcard."""
    return "*" in path or "?" in path


def normalize_lease_path(path: str, field: str = "path") -> str:
    """Return the project-relative POSIX form of ``path``, or raise ValidationError.

    ``./src/a.py``, ``src//a.py`` and ``src/x/../a.py`` all become ``src/a.py``.
    Absolute paths and paths that climb out of the project (``../x``) are refused.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValidationError(field, "must be a non-empty path")
    if len(path) > MAX_PATH_CHARS:
        raise ValidationError(field, f"is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise ValidationError(field, "must not contain NUL")
    raw = path.strip().replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ValidationError(field, f"{path!r} is absolute; use a project-relative path")
    norm = posixpath.normpath(raw)
    if norm == ".." or norm.startswith("../"):
        raise ValidationError(field, f"{path!r} escapes the project")
    if norm == ".":
        return "**"
    return norm


def paths_overlap(a: str, b: str) -> bool:
    """True when some path matches both normalised patterns ``a`` and ``b``."""
    return _segments_overlap(tuple(a.split("/")), tuple(b.split("/")))


@lru_cache(maxsize=4096)
def _segments_overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a and not b:
        return True
    if a and a[0] == "**":
        return _segments_overlap(a[1:], b) or (bool(b) and _segments_overlap(a, b[1:]))
    if b and b[0] == "**":
        return _segments_overlap(a, b[1:]) or (bool(a) and _segments_overlap(a[1:], b))
    if not a or not b:
        return False
    return _glob_overlap(a[0], b[0]) and _segments_overlap(a[1:], b[1:])


@lru_cache(maxsize=4096)
def _glob_overlap(x: str, y: str) -> bool:
    """True when one string within a segment matches both glob segments."""
    if not x and not y:
        return True
    if x and x[0] == "*":
        return _glob_overlap(x[1:], y) or (bool(y) and _glob_overlap(x, y[1:]))
    if y and y[0] == "*":
        return _glob_overlap(x, y[1:]) or (bool(x) and _glob_overlap(x[1:], y))
    if not x or not y:
        return False
    if x[0] == "?" or y[0] == "?" or x[0] == y[0]:
        return _glob_overlap(x[1:], y[1:])
    return False
