"""Static checks as tests, so the README's one test command also proves them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workspace import ROOT, packages


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_check() -> None:
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize("dist", [p.dist for p in packages(ROOT)])
def test_mypy_strict(dist: str) -> None:
    result = run(sys.executable, "-m", "mypy", f"packages/{dist}/src")
    assert result.returncode == 0, result.stdout[-4000:]
