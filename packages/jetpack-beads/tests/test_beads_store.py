"""Store behaviour beyond the kit: the SQL ready rule against the shared rules, graph
updates, the registry entry point, and the public face."""

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

import jetpack.beads
from jetpack.beads import BeadsAdapter
from jetpack.shared import TaskStatus, utcnow
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import ConflictError, JetpackError, NotFoundError, ValidationError
from jetpack.shared.registry import load_backend
from jetpack.shared.rules import claim_order_key, has_skills, is_ready


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then the rest
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_importable() -> None:
    assert jetpack.beads.__all__ == sorted(jetpack.beads.__all__, key=_isort_key)
    for name in jetpack.beads.__all__:
        assert hasattr(jetpack.beads, name)


def test_entry_point_and_from_config(tmp_path: Path) -> None:
    cls = load_backend("tasks.local")
    assert cls is BeadsAdapter
    config = JetpackConfig(project_dir=tmp_path, beads={"claim_ttl_ms": 1234})  # type: ignore[call-arg]
    store = cls.from_config(config, agent_id="cli")
    assert isinstance(store, BeadsAdapter)
    assert store.db_path == tmp_path / ".beads" / "beads.db"
    assert store.claim_ttl_ms == 1234


async def test_unopened_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(JetpackError, match="not open"):
        await BeadsAdapter(tmp_path / "x.db").get_task("bd-1")


async def test_sql_ready_rule_matches_shared_rules(tmp_path: Path) -> None:
    async with BeadsAdapter(tmp_path / "rule.db", retry_base_ms=600_000) as store:
        await _check_ready_rule(store)


async def _check_ready_rule(store: BeadsAdapter) -> None:
    rng = random.Random(7)
    ids: list[str] = []
    for i in range(120):
        deps = rng.sample(ids, k=min(len(ids), rng.choice([0, 0, 1, 2])))
        task = await store.create_task(
            {
                "title": f"t{i}",
                "priority": rng.choice(["low", "medium", "high", "critical"]),
                "dependencies": deps,
                "blockers": ["waiting on legal"] if rng.random() < 0.1 else [],
                "required_skills": rng.sample(["py", "js", "sql"], k=rng.choice([0, 1, 2])),
                "status": rng.choice(["pending", "pending", "ready", "completed", "blocked"]),
            }
        )
        ids.append(task.id)
    for _ in range(10):  # some retries with back-off in the future
        held = await store.claim_next("agent-x")
        if held:
            await store.fail_task(held.id, "agent-x", "flaky")
    tasks = await store.list_tasks()
    status = {t.id: t.status for t in tasks}
    now = utcnow()  # back-offs are 10 minutes long: nothing changes during the test
    expected = sorted((t for t in tasks if is_ready(t, status, now)), key=claim_order_key)
    assert [t.id for t in await store.get_ready_tasks()] == [t.id for t in expected]
    assert (await store.get_stats()).ready == len(expected)
    for skills in (["py"], ["py", "sql"], []):
        best = next((t for t in expected if has_skills(t, skills)), None)
        claimed = await store.claim_next("agent-y", skills)
        assert (claimed.id if claimed else None) == (best.id if best else None)
        if claimed:
            expected.remove(best)  # type: ignore[arg-type]


async def test_update_dependencies_refuses_cycles_and_moves_edges(store: BeadsAdapter) -> None:
    a = await store.create_task({"title": "a"})
    b = await store.create_task({"title": "b", "dependencies": [a.id]})
    c = await store.create_task({"title": "c", "dependencies": [b.id]})
    with pytest.raises(ConflictError, match="cycle"):
        await store.update_task(a.id, {"dependencies": [c.id]})
    await store.update_task(c.id, {"dependencies": [a.id]})
    assert {t.id for t in await store.get_ready_tasks()} == {a.id}
    with pytest.raises(ConflictError, match="dependants"):
        await store.delete_task(a.id)
    assert await store.delete_task(c.id) is True
    assert await store.delete_task(b.id) is True
    assert await store.delete_task(a.id) is True
    assert await store.delete_task(a.id) is False
    with pytest.raises(NotFoundError):
        await store.update_task(a.id, {"title": "gone"})


async def test_failure_blocks_dependants_transitively(store: BeadsAdapter) -> None:
    root = await store.create_task({"title": "root", "max_retries": 0})
    mid = await store.create_task({"title": "mid", "dependencies": [root.id]})
    leaf = await store.create_task({"title": "leaf", "dependencies": [mid.id]})
    done = await store.create_task({"title": "done", "status": "completed"})
    await store.claim_task(root.id, "a")
    failed = await store.fail_task(root.id, "a", "broken")
    assert failed.status is TaskStatus.FAILED
    for task_id in (mid.id, leaf.id):
        task = await store.get_task(task_id)
        assert task is not None and task.status is TaskStatus.BLOCKED
        assert task.blockers == [f"dependency {root.id} failed"]
    untouched = await store.get_task(done.id)
    assert untouched is not None and untouched.status is TaskStatus.COMPLETED
    assert await store.release_task(root.id, "a") is False  # failed stays failed


async def test_generated_ids_look_like_beads(store: BeadsAdapter) -> None:
    made = await store.create_tasks([{"title": str(i)} for i in range(50)])
    assert len({t.id for t in made}) == 50
    assert all(t.id.startswith("bd-") and t.id[3:].isalnum() for t in made)


async def test_refused_renewal_of_a_lapsed_claim_keeps_the_sweep(
    store: BeadsAdapter, db_path: Path
) -> None:
    """The probe's sequence: the refusal must not roll the sweep back (issue 11 §2)."""
    task = await store.create_task({"title": "a", "max_retries": 2})
    assert await store.claim_task(task.id, "ag", ttl_ms=50) is not None
    await asyncio.sleep(0.3)
    with pytest.raises(ConflictError):
        await store.renew_claim(task.id, "ag")
    with pytest.raises(ConflictError):
        await store.complete_task(task.id, "ag")
    with sqlite3.connect(db_path) as conn:  # committed, as another process sees it
        row = conn.execute(
            "SELECT status, assigned_agent, retry_count, failure_type FROM tasks WHERE id = ?",
            (task.id,),
        ).fetchone()
    assert row == ("ready", None, 1, "stalled")


def test_unknown_options_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        BeadsAdapter(tmp_path / "x.db", claim_tll_ms=5)
    assert info.value.field == "claim_tll_ms" and "claim_ttl_ms" in str(info.value)
    config = JetpackConfig(project_dir=tmp_path, beads={"pool_sise": 2})  # type: ignore[call-arg]
    store = BeadsAdapter.from_config(config, agent_id="cli")  # a config table only warns
    assert isinstance(store, BeadsAdapter)
    with pytest.raises(ValidationError) as info:
        BeadsAdapter.from_config(config, agent_id="cli", pool_sise=2)
    assert info.value.field == "pool_sise"
