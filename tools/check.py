"""Workspace checks that CI runs and a release relies on.

Usage: python tools/check.py [--no-build]

1. every package builds a wheel that holds every file of its source folder
   (data files too, such as the kit's test data) and no ``jetpack/__init__.py``;
2. no ``src/jetpack/__init__.py`` anywhere (PEP 420 namespace);
3. each package imports only the standard library, itself and the
   distributions it declares (dependencies or extras);
4. versions and changelogs agree; sibling ranges admit the sibling's version.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workspace import ROOT, Package, fmt, packages

REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pkg: Package) -> set[str]:
    """Distributions ``pkg`` may import: itself, dependencies and every extra."""
    project = pkg.pyproject()["project"]
    assert isinstance(project, dict)
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    names = {canonical(pkg.dist)}
    for req in reqs:
        match = REQ_NAME.match(req)
        if match:
            names.add(canonical(match.group(1)))
    return names


def imported_modules(src: Path) -> set[str]:
    """Absolute import targets in the package's sources, as dotted names."""
    found: set[str] = set()
    for file in src.rglob("*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def check_imports(pkg: Package, workspace: list[Package]) -> list[str]:
    """Imports of undeclared distributions."""
    allowed = declared(pkg)
    by_module = {f"jetpack.{p.module}": canonical(p.dist) for p in workspace}
    third_party = {k: [canonical(d) for d in v] for k, v in packages_distributions().items()}
    problems = []
    for name in sorted(imported_modules(pkg.src)):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if top == "jetpack":
            owner = by_module.get(".".join(name.split(".")[:2]))
            if owner is None or owner not in allowed:
                problems.append(f"{pkg.dist}: imports {name} but does not declare its distribution")
            continue
        dists = third_party.get(top)
        if dists is None:
            problems.append(f"{pkg.dist}: imports {name}, which no installed distribution provides")
        elif not allowed.intersection(dists):
            problems.append(f"{pkg.dist}: imports {name} ({', '.join(dists)}) without declaring it")
    return problems


def check_namespace(root: Path) -> list[str]:
    """PEP 420: no jetpack/__init__.py."""
    return [
        f"{p.relative_to(root)} breaks the jetpack namespace package"
        for p in root.glob("packages/*/src/jetpack/__init__.py")
    ]


def check_versions(workspace: list[Package]) -> list[str]:
    """Changelog headings vs __about__ versions, and sibling ranges vs sibling versions."""
    problems = []
    versions = {canonical(p.dist): p.version() for p in workspace}
    for pkg in workspace:
        text = pkg.changelog.read_text(encoding="utf-8") if pkg.changelog.exists() else ""
        if "## Unreleased" not in text:
            problems.append(f"{pkg.dist}: CHANGELOG.md has no '## Unreleased' section")
        released = [
            tuple(int(x) for x in m) for m in re.findall(r"^## (\d+)\.(\d+)\.(\d+)", text, re.M)
        ]
        if released and max(released) != pkg.version():
            latest = fmt(max(released))
            problems.append(
                f"{pkg.dist}: version {fmt(pkg.version())} but CHANGELOG's latest is {latest}"
            )
        project = pkg.pyproject()["project"]
        assert isinstance(project, dict)
        reqs = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            reqs.extend(extra)
        for req in reqs:
            match = re.match(
                r"^(jetpack-[a-z-]+)(?:\[[a-z0-9,-]+\])?\s*>=\s*([\d.]+)\s*,\s*<\s*([\d.]+)", req
            )
            if not match:
                if req.startswith("jetpack-"):
                    problems.append(f"{pkg.dist}: sibling requirement {req!r} is not a >=,< range")
                continue
            sibling, low, high = match.groups()
            have = versions.get(canonical(sibling))
            lo = tuple(int(x) for x in low.split("."))
            hi = tuple(int(x) for x in high.split("."))
            if have is None:
                problems.append(f"{pkg.dist}: requires unknown sibling {sibling}")
            elif not (lo <= have < hi):
                problems.append(f"{pkg.dist}: {req!r} excludes {sibling} {fmt(have)}")
    return problems


SKIPPED_PARTS = {"__pycache__", "node_modules", ".wrangler", ".mypy_cache"}


def source_files(pkg: Package) -> list[str]:
    """Paths a wheel must hold: every file under src/jetpack/<module> but caches."""
    return sorted(
        f"jetpack/{pkg.module}/{p.relative_to(pkg.src).as_posix()}"
        for p in pkg.src.rglob("*")
        if p.is_file()
        and not SKIPPED_PARTS.intersection(p.relative_to(pkg.src).parts)
        and p.suffix not in {".pyc", ".pyo"}
    )


def check_wheels(workspace: list[Package]) -> list[str]:
    """Build each wheel with hatchling; every source file inside, no namespace __init__."""
    problems = []
    with tempfile.TemporaryDirectory() as out:
        for pkg in workspace:
            target = Path(out) / pkg.dist
            result = subprocess.run(
                [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(target)],
                cwd=pkg.path,
                capture_output=True,
                text=True,
                check=False,
            )
            wheels = list(target.glob("*.whl"))
            if result.returncode != 0 or not wheels:
                problems.append(f"{pkg.dist}: wheel build failed: {result.stderr.strip()[-400:]}")
                continue
            names = zipfile.ZipFile(wheels[0]).namelist()
            if "jetpack/__init__.py" in names:
                problems.append(f"{pkg.dist}: wheel contains jetpack/__init__.py")
            if not any(n.startswith(f"jetpack/{pkg.module}/__init__.py") for n in names):
                problems.append(f"{pkg.dist}: wheel lacks jetpack/{pkg.module}/__init__.py")
            missing = sorted(set(source_files(pkg)) - set(names))
            if missing:
                problems.append(f"{pkg.dist}: wheel lacks {', '.join(missing[:5])}")
    return problems


def run(root: Path = ROOT, build: bool = True) -> list[str]:
    """Every problem found, as one line each."""
    workspace = packages(root)
    problems = check_namespace(root) + check_versions(workspace)
    for pkg in workspace:
        problems += check_imports(pkg, workspace)
    if build:
        problems += check_wheels(workspace)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="skip building wheels")
    args = parser.parse_args(argv)
    problems = run(build=not args.no_build)
    for line in problems:
        print(f"FAIL {line}")
    count = len(packages())
    print(f"{count} packages checked: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
