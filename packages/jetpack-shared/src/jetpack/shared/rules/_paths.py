"""Lease paths: normalisation and overlap between paths and glob patterns.

Patterns use ``*`` (any run of characters within one segment), ``?`` (one
character) and ``**`` (any number of whole segments, as a segment of its own).
Two patterns overlap when some path matches both; two exclusive leases on
overlapping patterns never coexist.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from jetpack.shared._base import text_problem
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
    problem = text_problem(path)
    if problem:
        raise ValidationError(field, problem)
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
    """True when some path matches both normalised patterns ``a`` and ``b``.

    No recursion and about linear in the pattern lengths (quadratic only for
    contrived patterns), so the longest paths (:data:`MAX_PATH_CHARS`) with any
    number of wildcards are safe. Results are cached: lease checks ask the same
    pairs again and again.
    """
    return _paths_overlap(a, b)


@lru_cache(maxsize=4096)
def _paths_overlap(a: str, b: str) -> bool:
    return _segments_overlap(_collapse(a.split("/")), _collapse(b.split("/")))


def _collapse(segments: list[str]) -> list[str]:
    """Runs of ``**`` segments mean the same as one."""
    out: list[str] = []
    for segment in segments:
        if not (segment == "**" and out and out[-1] == "**"):
            out.append(segment)
    return out


Agree = Callable[[str, str], bool]
"""Whether two atoms (segment globs, or glob characters) can match one same thing."""
Find = Callable[[Sequence[str], Sequence[str], int, int], int]
"""Leftmost index in ``[start, end - len(piece)]`` where a star-free piece fits, or -1."""
Split = Callable[[Sequence[str]], list[Sequence[str]]]
"""The star-free pieces between the stars."""


def _segments_overlap(a: list[str], b: list[str]) -> bool:
    """Whether two segment lists (``**`` = any run of whole segments) share a path."""
    return _star_overlap(a, b, "**", _glob_overlap, _split_segments, _find_segments)


_STAR_RUN = re.compile(r"\*{2,}")


@lru_cache(maxsize=4096)
def _glob_overlap(x: str, y: str) -> bool:
    """True when one string within a segment matches both glob segments.

    ``*`` is any run of characters, ``?`` any one character.
    """
    x, y = _STAR_RUN.sub("*", x), _STAR_RUN.sub("*", y)
    return _star_overlap(x, y, "*", _char_agree, _split_chars, _find_chars)


def _star_overlap(
    a: Sequence[str], b: Sequence[str], star: str, agree: Agree, split: Split, find: Find
) -> bool:
    """Whether two sequences of atoms, where ``star`` is any run of atoms, share a match.

    Without ``star`` on either side the atoms pair up one to one. With ``star``
    on both sides, the middle of a common match can hold the inner atoms of
    both, so only the atoms before the first and after the last ``star`` must
    agree. With ``star`` on one side only, the other is a fixed word: match the
    first and last pieces at its ends and each inner piece leftmost in between
    (leftmost is never worse: it leaves the most room for the rest).
    """
    star_a, star_b = star in a, star in b
    if not star_a and not star_b:
        return len(a) == len(b) and all(map(agree, a, b))
    if star_a and star_b:
        return _ends_agree(a, b, star, agree)
    if star_b:
        a, b = b, a
    pieces = split(a)
    first, last = pieces[0], pieces[-1]
    if len(first) + len(last) > len(b):
        return False
    end = len(b) - len(last)
    if not all(map(agree, first, b[: len(first)])) or not all(map(agree, last, b[end:])):
        return False
    pos = len(first)
    for piece in pieces[1:-1]:
        found = find(piece, b, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def _split_segments(items: Sequence[str]) -> list[Sequence[str]]:
    pieces: list[list[str]] = [[]]
    for item in items:
        if item == "**":
            pieces.append([])
        else:
            pieces[-1].append(item)
    return list(pieces)


def _split_chars(text: Sequence[str]) -> list[Sequence[str]]:
    return list(str(text).split("*"))


def _find_segments(piece: Sequence[str], word: Sequence[str], start: int, end: int) -> int:
    size = len(piece)
    for at in range(start, end - size + 1):
        if all(map(_glob_overlap, piece, word[at : at + size])):
            return at
    return -1


def _find_chars(piece: Sequence[str], word: Sequence[str], start: int, end: int) -> int:
    found = _piece_regex(str(piece)).search(str(word), start, end)
    return -1 if found is None else found.start()


def _ends_agree(a: Sequence[str], b: Sequence[str], star: str, agree: Agree) -> bool:
    """Both hold ``star``: the parts before the first and after the last must agree."""
    head = min(a.index(star), b.index(star))
    tail = min(len(a) - 1 - _last(a, star), len(b) - 1 - _last(b, star))
    if not all(map(agree, a[:head], b[:head])):
        return False
    return tail == 0 or all(map(agree, a[len(a) - tail :], b[len(b) - tail :]))


def _last(items: Sequence[str], star: str) -> int:
    return len(items) - 1 - list(reversed(items)).index(star)


def _char_agree(p: str, q: str) -> bool:
    return p == q or p == "?" or q == "?"


@lru_cache(maxsize=1024)
def _piece_regex(piece: str) -> re.Pattern[str]:
    """A star-free glob piece as a regex over strings that may hold ``?`` themselves."""
    return re.compile(
        "".join("." if c == "?" else "[" + re.escape(c) + r"?]" for c in piece), re.DOTALL
    )
