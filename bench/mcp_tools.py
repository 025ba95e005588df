"""Benchmark the ``jetpack mcp`` server: tool-list size and tool-call round trips over stdio.

Run from the workspace env::

    hatch run python bench/mcp_tools.py               # human-readable
    hatch run python bench/mcp_tools.py --json        # machine-readable
    hatch run python bench/mcp_tools.py -n 500        # more calls per tool

It starts ``python -m jetpack.cli.mcp`` on a fresh temp project (local
backends; a stand-in in-memory memory store while no ``memory.local`` backend
is installed) with the SDK's stdio client in legacy (initialize) mode, as
Claude Code does, and reports:

- tool count and the size of the ``tools/list`` result JSON (what a client
  puts into the model's context), plus the ``instructions`` size;
- time from spawn to an initialised session;
- p50/p95 round trip of ``tasks ready`` (read), ``lease who`` (read),
  ``mail inbox`` (read), ``lease reserve`` (write, re-reserving one path),
  ``task_new`` (write), ``memory store`` and ``memory search`` (hybrid; with
  jetpack-cass these embed with its local model), ``-n`` calls each after 20
  warm-up calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from jetpack.shared.registry import discover_backends

_STAND_IN = """
from jetpack.shared.testing import InMemoryMemoryStore


class Memory(InMemoryMemoryStore):
    @classmethod
    def from_config(cls, config, *, agent_id):
        return cls()
"""


def _env(root: Path) -> tuple[dict[str, str], bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
    if "memory.local" in {b.name for b in discover_backends()}:
        return env, False
    site = root / "site"
    dist = site / "jetpack_mcp_bench_memory-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jetpack-mcp-bench-memory\nVersion: 0.0.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[jetpack.backends]\nmemory.local = jetpack_mcp_bench_memory:Memory\n"
    )
    (site / "jetpack_mcp_bench_memory.py").write_text(_STAND_IN)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env, True


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "proj"
        project.mkdir()
        env, stand_in = _env(root)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "jetpack.cli.mcp", "--agent-id", "bench", "--project", str(project)],
            env=env,
        )
        started = time.perf_counter()
        async with Client(stdio_client(params), mode="legacy") as client:
            startup_ms = (time.perf_counter() - started) * 1000
            listed = await client.list_tools()
            list_json = listed.model_dump_json(by_alias=True, exclude_none=True)
            instructions = client.instructions or ""
            for i in range(5):
                await client.call_tool("task_new", {"title": f"seed {i}", "priority": "high"})
            calls: dict[str, tuple[str, dict[str, Any]]] = {
                "tasks ready": ("tasks", {"action": "ready"}),
                "lease who": ("lease", {"action": "who"}),
                "mail inbox": ("mail", {"action": "inbox"}),
                "lease reserve": ("lease", {"action": "reserve", "paths": ["src/x.py"]}),
                "task_new": ("task_new", {"title": "bench task"}),
                "memory store": ("memory", {"action": "store", "content": "WAL helps claims"}),
                "memory search": ("memory", {"action": "search", "query": "claims WAL"}),
            }
            latency: dict[str, dict[str, float]] = {}
            for label, (tool, args) in calls.items():
                for _ in range(20):
                    await client.call_tool(tool, args)
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    result = await client.call_tool(tool, args)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert not result.is_error, result.content
                latency[label] = {
                    "p50_ms": round(statistics.median(times), 3),
                    "p95_ms": round(_pct(times, 0.95), 3),
                    "mean_ms": round(statistics.fmean(times), 3),
                }
        return {
            "tools": len(listed.tools),
            "tool_names": [t.name for t in listed.tools],
            "tools_list_bytes": len(list_json.encode()),
            "tools_list_approx_tokens": len(list_json) // 4,
            "instructions_bytes": len(instructions.encode()),
            "startup_ms": round(startup_ms, 1),
            "calls_per_tool": n,
            "latency": latency,
            "memory_stand_in": stand_in,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} x{os.cpu_count()}",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="timed calls per tool")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    report = asyncio.run(_run(opts.n))
    if opts.json:
        print(json.dumps(report, indent=2))
        return
    print(f"tools: {report['tools']} ({', '.join(report['tool_names'])})")
    print(
        f"tools/list result: {report['tools_list_bytes']} bytes "
        f"(~{report['tools_list_approx_tokens']} tokens); "
        f"instructions: {report['instructions_bytes']} bytes"
    )
    print(f"spawn → initialised: {report['startup_ms']} ms")
    print(f"round trips over stdio ({report['calls_per_tool']} calls each):")
    for label, row in report["latency"].items():
        print(f"  {label:<14} p50 {row['p50_ms']:7.3f} ms   p95 {row['p95_ms']:7.3f} ms")
    if report["memory_stand_in"]:
        print("(memory store: in-memory stand-in; no memory.local backend installed)")
    print(f"python {report['python']} on {report['machine']}")


if __name__ == "__main__":
    main()
