"""The lease path rules of the Worker (worker/paths.ts) judged by the kit that judges
jetpack.shared.rules: directly under Node, and through a running LeaseDO."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from jetpack.cf_mail import EDGE_MODULE, CloudflareMailBus
from jetpack.shared.edge import ensure_toolchain
from jetpack.shared.rules import paths_overlap
from jetpack.shared.testing import judge_lease_path_rules, lease_overlap_cases
from jetpack.shared.testing.edge import EdgeProject

DRIVER = """
import {{ normalizeLeasePath, pathsOverlap }} from {module};
let text = "";
process.stdin.on("data", (chunk) => (text += chunk));
process.stdin.on("end", () => {{
  const cases = JSON.parse(text);
  const answer = cases.pairs
    ? cases.pairs.map(([a, b]) => pathsOverlap(a, b))
    : cases.paths.map((p) => {{ const r = normalizeLeasePath(p); return r.ok ? r.path : null; }});
  process.stdout.write(JSON.stringify(answer));
}});
"""


def _node(tmp: Path) -> tuple[list[str], Path]:
    toolchain = ensure_toolchain()
    driver = tmp / "driver.mjs"
    source = (EDGE_MODULE.worker_dir / "paths.ts").as_uri()
    driver.write_text(DRIVER.format(module=json.dumps(source)), encoding="utf-8")
    return [str(toolchain.node), str(driver)], driver


def test_the_typescript_rules_pass_the_kit(tmp_path: Path) -> None:
    command, _ = _node(tmp_path)

    def run(cases: dict[str, object]) -> list[object]:
        done = subprocess.run(
            command,
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        answer: list[object] = json.loads(done.stdout)
        return answer

    problems = judge_lease_path_rules(
        lambda pairs: [bool(x) for x in run({"pairs": pairs})],
        lambda paths: [x if isinstance(x, str) else None for x in run({"paths": paths})],
        random_pairs=6000,
    )
    assert problems == []


async def test_the_lease_object_refuses_exactly_the_overlapping_patterns(
    edge_project: EdgeProject,
) -> None:
    """Agent 1 holds a; agent 2 asks for b: refused iff the Python rule says they overlap."""
    cases = [c for c in lease_overlap_cases(200, seed=3) if len(c[0]) < 200 and len(c[1]) < 200]
    p = edge_project
    async with (
        CloudflareMailBus("one", p.url, p.token) as one,
        CloudflareMailBus("two", p.url, p.token) as two,
    ):
        for a, b, expected in cases[:160]:
            assert await one.acquire_lease(a, 60_000), a
            assert await two.acquire_lease(b, 60_000) is not expected, (a, b, expected)
            assert expected is paths_overlap(a, b)
            await one.release_lease(a)
            await two.release_lease(b)
