"""Fixtures of the jetpack-cli tests: a fake `claude` on PATH, process checks."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def install_fake_claude(bin_dir: Path) -> Path:
    """Write an executable `claude` (the fake, run by this interpreter) into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "claude"
    source = (HERE / "fake_claude.py").read_text(encoding="utf-8")
    target.write_text(f"#!{sys.executable}\n{source}", encoding="utf-8")
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake `claude` first on PATH; return its path."""
    bin_dir = tmp_path / "bin"
    target = install_fake_claude(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return target


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def alive():  # type: ignore[no-untyped-def]
    """The pid_alive function, for tests (conftest is not importable by name)."""
    return pid_alive
