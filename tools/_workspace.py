"""What the tools know about the workspace: its packages, versions and changelogs."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_RE = re.compile(r'^__version__ = "(\d+)\.(\d+)\.(\d+)"$', re.M)


@dataclass(frozen=True)
class Package:
    """One distribution under packages/."""

    dist: str
    path: Path

    @property
    def module(self) -> str:
        """Import name under the jetpack namespace, e.g. ``mcp_mail``."""
        return self.dist.removeprefix("jetpack-").replace("-", "_")

    @property
    def src(self) -> Path:
        """The package's source folder: src/jetpack/<module>."""
        return self.path / "src" / "jetpack" / self.module

    @property
    def about(self) -> Path:
        """The file holding ``__version__``."""
        return self.src / "__about__.py"

    @property
    def changelog(self) -> Path:
        """CHANGELOG.md."""
        return self.path / "CHANGELOG.md"

    def pyproject(self) -> dict[str, object]:
        """Parsed pyproject.toml."""
        return tomllib.loads((self.path / "pyproject.toml").read_text(encoding="utf-8"))

    def version(self) -> tuple[int, int, int]:
        """Version from __about__.py."""
        match = VERSION_RE.search(self.about.read_text(encoding="utf-8"))
        if not match:
            raise ValueError(f'{self.about}: no __version__ = "X.Y.Z" line')
        major, minor, patch = (int(g) for g in match.groups())
        return major, minor, patch


def packages(root: Path = ROOT) -> list[Package]:
    """Every distribution in the workspace, sorted by name."""
    return [
        Package(p.name, p)
        for p in sorted((root / "packages").iterdir())
        if (p / "pyproject.toml").exists()
    ]


def find(dist: str, root: Path = ROOT) -> Package:
    """The package called ``dist``; ValueError names the known ones otherwise."""
    for pkg in packages(root):
        if pkg.dist == dist:
            return pkg
    known = ", ".join(p.dist for p in packages(root))
    raise ValueError(f"unknown distribution {dist!r}; known: {known}")


def fmt(version: tuple[int, int, int]) -> str:
    """Format a version tuple."""
    return ".".join(str(v) for v in version)
