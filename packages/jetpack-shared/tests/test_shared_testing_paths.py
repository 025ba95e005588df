"""The lease path kit judges jetpack.shared.rules itself (the rule every other copy must keep)."""

from __future__ import annotations

from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import normalize_lease_path, paths_overlap
from jetpack.shared.testing import judge_lease_path_rules


def _normal(path: str) -> str | None:
    try:
        return normalize_lease_path(path)
    except ValidationError:
        return None


def test_the_python_rules_pass_the_kit() -> None:
    problems = judge_lease_path_rules(
        lambda pairs: [paths_overlap(a, b) for a, b in pairs],
        lambda paths: [_normal(p) for p in paths],
    )
    assert problems == []


def test_the_kit_catches_a_wrong_rule() -> None:
    """A rule that ignores `?` on astral characters (UTF-16 thinking) is caught."""

    def utf16_overlap(pairs: list[tuple[str, str]]) -> list[bool]:
        out = []
        for a, b in pairs:
            wide = "😀" in a + b and "?" in a + b
            out.append(not paths_overlap(a, b) if wide else paths_overlap(a, b))
        return out

    problems = judge_lease_path_rules(utf16_overlap, lambda paths: [_normal(p) for p in paths])
    assert any("😀" in problem for problem in problems)
