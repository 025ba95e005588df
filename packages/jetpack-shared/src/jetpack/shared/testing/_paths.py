"""The lease path rules' kit: one set of cases that judges every implementation.

``jetpack.shared.rules`` (``normalize_lease_path``, ``paths_overlap``) is the
rule; a backend that keeps the same rule in another language (the Worker's
TypeScript in jetpack-cf-mail) is judged by the same cases::

    problems = judge_lease_path_rules(overlap_many, normalize_many)
    assert problems == []

Both callables take a whole batch (one call into another runtime, not one per
case). Expected answers come from fixed cases and, for random patterns, from
the obvious recursive definition of overlap (an oracle fine for short patterns).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import cache

__all__ = ["judge_lease_path_rules", "lease_overlap_cases", "lease_path_normal_forms"]

OverlapMany = Callable[[list[tuple[str, str]]], Sequence[bool]]
NormalizeMany = Callable[[list[str]], Sequence[str | None]]

_FIXED: list[tuple[str, str, bool]] = [
    ("src/a.py", "src/a.py", True),
    ("src/a.py", "src/b.py", False),
    ("src/**", "src/deep/x/y.py", True),
    ("src/**", "src", True),
    ("src/*.py", "src/a.py", True),
    ("src/*.py", "src/a/b.py", False),
    ("src/*.py", "src/*.ts", False),
    ("src/a*", "src/*b", True),
    ("src/**/test_*.py", "src/x/test_a.py", True),
    ("docs/**", "src/**", False),
    ("**", "anything/at/all", True),
    ("src/?.py", "src/ab.py", False),
    ("src/?.py", "src/é.py", True),
    ("src/?.py", "src/😀.py", True),
    ("src/??.py", "src/😀.py", False),
    ("b" * 600, "*" * 600, True),
    ("b" * 600, "b" * 1000, False),
    ("*" * 1000, "b" * 1000, True),
    ("*" * 1000, "*" * 1000, True),
    ("*" + "a" * 500 + "b*c", "a" * 1000 + "c", False),
    ("*" + "a" * 500 + "*c", "a" * 1000 + "c", True),
    ("?" * 1000, "b" * 1000, True),
    ("?" * 1000, "b" * 999, False),
    ("/".join(["a"] * 512), "/".join(["**"] * 341), True),
    ("/".join(["a"] * 512), "**/" + "/".join(["a"] * 200) + "/b/**", False),
    ("**/" + "/".join(["a"] * 250) + "/**", "/".join(["?"] * 511), True),
    ("/".join(["*"] * 512), "/".join(["a"] * 511), False),
]

_NORMAL_FORMS: list[tuple[str, str | None]] = [
    ("./src/a.py", "src/a.py"),
    ("src//a.py", "src/a.py"),
    ("src/x/../a.py", "src/a.py"),
    ("a\\b\\..\\c", "a/c"),
    ("a/./b/.", "a/b"),
    (".", "**"),
    ("a/..", "**"),
    ("  src/a.py\t", "src/a.py"),
    ("\u00a0src\u2003", "src"),
    ("\x1csrc\x1f", "src"),
    ("\ufeffsrc", "\ufeffsrc"),
    ("src/😀:x", "src/😀:x"),
    ("é" * 1024, "é" * 1024),
    ("😀" * 1024, "😀" * 1024),
    ("..", None),
    ("../x", None),
    ("a/../../b", None),
    ("/etc/passwd", None),
    ("C:/x", None),
    ("😀:x", None),
    ("", None),
    ("   ", None),
    ("\x85", None),
    ("x" * 1025, None),
    ("a\x00b", None),
    ("src/\ud800.py", None),
]


def _reference_overlap(a: str, b: str) -> bool:
    """The obvious recursive definition (fine for short patterns): the oracle."""

    @cache
    def segments(x: tuple[str, ...], y: tuple[str, ...]) -> bool:
        if not x and not y:
            return True
        if x and x[0] == "**":
            return segments(x[1:], y) or (bool(y) and segments(x, y[1:]))
        if y and y[0] == "**":
            return segments(x, y[1:]) or (bool(x) and segments(x[1:], y))
        if not x or not y:
            return False
        return chars(x[0], y[0]) and segments(x[1:], y[1:])

    @cache
    def chars(x: str, y: str) -> bool:
        if not x and not y:
            return True
        if x and x[0] == "*":
            return chars(x[1:], y) or (bool(y) and chars(x, y[1:]))
        if y and y[0] == "*":
            return chars(x, y[1:]) or (bool(x) and chars(x[1:], y))
        if not x or not y:
            return False
        return (x[0] == "?" or y[0] == "?" or x[0] == y[0]) and chars(x[1:], y[1:])

    return segments(tuple(a.split("/")), tuple(b.split("/")))


def lease_overlap_cases(random_pairs: int = 3000, seed: int = 11) -> list[tuple[str, str, bool]]:
    """``(a, b, overlap)``: the fixed cases, both ways round, then random short patterns."""
    cases = [*_FIXED, *((b, a, expected) for a, b, expected in _FIXED)]
    rng = random.Random(seed)
    atoms = ["a", "b", "*", "?", "ab", "é", "😀"]

    def pattern() -> str:
        parts = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.25:
                parts.append("**")
            else:
                parts.append("".join(rng.choice(atoms) for _ in range(rng.randint(1, 4))))
        return "/".join(parts)

    for _ in range(random_pairs):
        a, b = pattern(), pattern()
        cases.append((a, b, _reference_overlap(a, b)))
    return cases


def lease_path_normal_forms() -> list[tuple[str, str | None]]:
    """``(given, normal form)``; None where the path must be refused."""
    return list(_NORMAL_FORMS)


def judge_lease_path_rules(
    overlap_many: OverlapMany, normalize_many: NormalizeMany, *, random_pairs: int = 3000
) -> list[str]:
    """Every case an implementation answers wrongly (empty: it keeps the rules).

    ``overlap_many`` answers ``paths_overlap`` for a batch of pairs;
    ``normalize_many`` gives each path's normal form, or None when it refuses it.
    """
    problems: list[str] = []
    overlaps = lease_overlap_cases(random_pairs)
    answers = list(overlap_many([(a, b) for a, b, _ in overlaps]))
    for (a, b, expected), got in zip(overlaps, answers, strict=True):
        if got is not expected:
            problems.append(f"overlap({a[:60]!r}, {b[:60]!r}) is {got}, expected {expected}")
    forms = lease_path_normal_forms()
    normals = list(normalize_many([given for given, _ in forms]))
    for (given, expected_form), got_form in zip(forms, normals, strict=True):
        if got_form != expected_form:
            shown = given[:60]
            problems.append(f"normalize({shown!r}) is {got_form!r}, expected {expected_form!r}")
    return problems
