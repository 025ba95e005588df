from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import check
from _workspace import ROOT, packages


def make_pkg(root: Path, dist: str, deps: list[str], code: str, version: str = "0.1.0") -> Path:
    module = dist.removeprefix("jetpack-").replace("-", "_")
    pkg = root / "packages" / dist
    src = pkg / "src" / "jetpack" / module
    src.mkdir(parents=True)
    dep_list = ", ".join(f'"{d}"' for d in deps)
    (pkg / "pyproject.toml").write_text(
        f'[project]\nname = "{dist}"\ndependencies = [{dep_list}]\n'
    )
    (src / "__about__.py").write_text(f'__version__ = "{version}"\n')
    (src / "__init__.py").write_text(code)
    (pkg / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n- x\n")
    return pkg


def test_undeclared_sibling_import_is_reported(tmp_path: Path) -> None:
    make_pkg(tmp_path, "jetpack-shared", ["pydantic>=2"], "import pydantic\n")
    make_pkg(tmp_path, "jetpack-beads", ["jetpack-shared>=0.1,<0.2"], "import jetpack.shared\n")
    make_pkg(
        tmp_path, "jetpack-cass", ["jetpack-shared>=0.1,<0.2"], "from jetpack.beads import X\n"
    )
    problems = check.run(tmp_path, build=False)
    assert problems == ["jetpack-cass: imports jetpack.beads but does not declare its distribution"]


def test_namespace_init_and_bad_ranges_are_reported(tmp_path: Path) -> None:
    make_pkg(tmp_path, "jetpack-shared", [], "", version="0.3.0")
    make_pkg(tmp_path, "jetpack-beads", ["jetpack-shared>=0.1,<0.2"], "")
    (tmp_path / "packages/jetpack-beads/src/jetpack/__init__.py").write_text("")
    problems = check.run(tmp_path, build=False)
    assert any("breaks the jetpack namespace" in p for p in problems)
    assert any("excludes jetpack-shared 0.3.0" in p for p in problems)


def test_changelog_must_match_version(tmp_path: Path) -> None:
    pkg = make_pkg(tmp_path, "jetpack-shared", [], "", version="0.2.0")
    (pkg / "CHANGELOG.md").write_text("# C\n\n## Unreleased\n\n## 0.3.0 — 2026-01-01\n")
    assert check.run(tmp_path, build=False) == [
        "jetpack-shared: version 0.2.0 but CHANGELOG's latest is 0.3.0"
    ]


def test_a_wheel_missing_a_data_file_is_reported(tmp_path: Path) -> None:
    pkg = make_pkg(tmp_path, "jetpack-shared", [], "")
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "jetpack-shared"\nversion = "0.1.0"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/jetpack"]\nexclude = ["*.jsonl"]\n'
    )
    data = pkg / "src/jetpack/shared/testing/data"
    data.mkdir(parents=True)
    (data / "sample.jsonl").write_text("{}\n")
    (data / "README.md").write_text("kept\n")
    assert check.check_wheels(packages(tmp_path)) == [
        "jetpack-shared: wheel lacks jetpack/shared/testing/data/sample.jsonl"
    ]


def test_the_real_workspace_passes() -> None:
    """The repository itself: eight packages, all checks including wheel builds."""
    assert len(packages(ROOT)) == 8
    assert check.run(ROOT, build=True) == []
