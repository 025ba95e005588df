"""Fixtures the integration tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]
"""``cli(folder, env, *args)``: run ``jetpack *args`` in ``folder`` with ``env`` added."""


def _run_jetpack(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jetpack.cli", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def cli() -> Cli:
    """The ``jetpack`` command as a separate process (a "machine" per folder)."""
    return _run_jetpack
