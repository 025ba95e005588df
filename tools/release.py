"""Bump one package's version and move its CHANGELOG "Unreleased" notes under it.

Usage: python tools/release.py <dist> <major|minor|patch> [--date YYYY-MM-DD]

Prints the tag to push, ``<dist>-v<version>``; the release workflow builds and
publishes that one distribution when the tag arrives.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workspace import ROOT, VERSION_RE, Package, find, fmt

UNRELEASED = "## Unreleased"


def bump(version: tuple[int, int, int], part: str) -> tuple[int, int, int]:
    """Next version for a major, minor or patch release."""
    major, minor, patch = version
    if part == "major":
        return major + 1, 0, 0
    if part == "minor":
        return major, minor + 1, 0
    if part == "patch":
        return major, minor, patch + 1
    raise ValueError(f"part must be major, minor or patch, not {part!r}")


def move_unreleased(changelog: str, version: str, date: str) -> str:
    """Put the Unreleased notes under ``## <version> — <date>`` and open a new Unreleased."""
    if UNRELEASED not in changelog:
        raise ValueError(f"CHANGELOG has no '{UNRELEASED}' section")
    head, _, rest = changelog.partition(UNRELEASED)
    body, sep, tail = rest.partition("\n## ")
    notes = body.strip("\n")
    if not notes.strip():
        raise ValueError("the Unreleased section is empty: nothing to release")
    released = f"{UNRELEASED}\n\n## {version} — {date}\n\n{notes}\n"
    return head + released + (f"\n## {tail}" if sep else "")


def release(pkg: Package, part: str, date: str) -> str:
    """Bump ``pkg`` and return its new tag."""
    new = fmt(bump(pkg.version(), part))
    changelog = move_unreleased(pkg.changelog.read_text(encoding="utf-8"), new, date)
    about = VERSION_RE.sub(f'__version__ = "{new}"', pkg.about.read_text(encoding="utf-8"))
    pkg.changelog.write_text(changelog, encoding="utf-8")
    pkg.about.write_text(about, encoding="utf-8")
    return f"{pkg.dist}-v{new}"


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", help="distribution, e.g. jetpack-beads")
    parser.add_argument("part", choices=["major", "minor", "patch"])
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="release date")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.date):
        parser.error("--date must be YYYY-MM-DD")
    try:
        tag = release(find(args.dist, root), args.part, args.date)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
