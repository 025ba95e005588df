"""Every benchmark in ``bench/`` still runs: each one, at a tiny size, ends cleanly.

The figures a benchmark prints are not judged here (timed unit tests judge noise,
not speed); what is judged is that the script runs to its end and prints its
table. Without this a bench broken by a refactor stays broken until the next
person who wants its figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# script and tiny arguments -> a line its table prints when the run reached its end
SMOKE: dict[str, tuple[list[str], str]] = {
    "tasks": (["--tasks", "200", "--claim-tasks", "100"], "claim"),
    "mail": (["--messages", "50", "--cycles", "20"], "lease"),
    "memory": (["--sizes", "300", "--no-eval"], "search"),
    "mcp_tools": (["-n", "5"], "tasks ready"),
    "fusion": ([], "hybrid"),
    "embedders": (["--texts", "16", "--repeats", "1"], "texts/s"),
    "mixed_load": (["--processes", "2", "--seconds", "2"], "claims"),
    "orchestrator": (
        ["--tasks", "40", "--agents", "2", "--edge-tasks", "20", "--quick"],
        "edge",
    ),
    "edge": (
        [
            *["--tasks", "200", "--claim-tasks", "60", "--singles", "10"],
            *["--memories", "300", "--messages", "20", "--cycles", "10"],
            *["--requests", "20", "--embed-texts", "16"],
        ],
        "lease",
    ),
}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_the_benchmark_runs_to_its_end(name: str, tmp_path: Path) -> None:
    args, marker = SMOKE[name]
    kept = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
    cache = os.environ.get("JETPACK_EDGE_CACHE")  # where the Worker toolchain is
    env = {**kept, "TMPDIR": str(tmp_path), **({"JETPACK_EDGE_CACHE": cache} if cache else {})}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"exit {done.returncode}\n{tail}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert marker in done.stdout.lower(), done.stdout[-3000:]
