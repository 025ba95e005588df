from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import release

CHANGELOG = """# Changelog — jetpack-demo

## Unreleased

- Added the thing.

## 0.1.0 — 2026-01-01

- First release.
"""


def make_workspace(root: Path, changelog: str = CHANGELOG) -> Path:
    pkg = root / "packages" / "jetpack-demo"
    src = pkg / "src" / "jetpack" / "demo"
    src.mkdir(parents=True)
    (pkg / "pyproject.toml").write_text('[project]\nname = "jetpack-demo"\ndependencies = []\n')
    (src / "__about__.py").write_text('"""Version."""\n\n__version__ = "0.1.0"\n')
    (pkg / "CHANGELOG.md").write_text(changelog)
    return pkg


def test_minor_release_bumps_and_moves_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = make_workspace(tmp_path)
    assert release.main(["jetpack-demo", "minor", "--date", "2026-11-27"], root=tmp_path) == 0
    assert capsys.readouterr().out.strip() == "jetpack-demo-v0.2.0"
    assert '__version__ = "0.2.0"' in (pkg / "src/jetpack/demo/__about__.py").read_text()
    text = (pkg / "CHANGELOG.md").read_text()
    assert (
        text.index("## Unreleased")
        < text.index("## 0.2.0 — 2026-11-27")
        < text.index("- Added the thing.")
    )
    assert text.index("- Added the thing.") < text.index("## 0.1.0")


@pytest.mark.parametrize(("part", "tag"), [("major", "1.0.0"), ("patch", "0.1.1")])
def test_other_parts(
    tmp_path: Path, part: str, tag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_workspace(tmp_path)
    assert release.main(["jetpack-demo", part, "--date", "2026-11-27"], root=tmp_path) == 0
    assert capsys.readouterr().out.strip() == f"jetpack-demo-v{tag}"


def test_empty_unreleased_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    pkg = make_workspace(tmp_path, "# Changelog\n\n## Unreleased\n\n## 0.1.0 — 2026-01-01\n\n- x\n")
    assert release.main(["jetpack-demo", "patch"], root=tmp_path) == 1
    assert '"0.1.0"' in (pkg / "src/jetpack/demo/__about__.py").read_text()


def test_unknown_distribution(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_workspace(tmp_path)
    assert release.main(["jetpack-nope", "patch"], root=tmp_path) == 1
    assert "known: jetpack-demo" in capsys.readouterr().err
