from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jetpack.shared import MAX_JSON_DEPTH, Message, MessageType, Task, TaskStatus
from jetpack.shared._base import json_problem
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import (
    MAX_TTL_MS,
    base36,
    blocker_for,
    blocker_names,
    check_imported,
    check_options,
    check_text,
    check_ttl,
    claim_order_key,
    dependants_closure,
    find_cycle,
    float32_problem,
    fuse_hybrid,
    has_skills,
    is_ready,
    new_task_id,
    next_after_failure,
    normalize_lease_path,
    option_names,
    outgoing,
    paths_overlap,
    plan_block,
    plan_rebase,
    resettle,
    retention_score,
    retry_delay_ms,
    status_change,
    topological_order,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task(**kw: object) -> Task:
    data: dict[str, object] = {"id": "bd-1", "title": "t", "created_at": NOW, "updated_at": NOW}
    data.update(kw)
    return Task.model_validate(data)


def test_ready_rule_each_condition() -> None:
    assert is_ready(task(), {}, NOW)
    assert not is_ready(task(status="claimed"), {}, NOW)
    assert not is_ready(task(blockers=["x"]), {}, NOW)
    assert not is_ready(task(not_before=NOW + timedelta(seconds=1)), {}, NOW)
    assert is_ready(task(not_before=NOW), {}, NOW)
    assert not is_ready(task(dependencies=["bd-2"]), {}, NOW), "unknown dependency is not done"
    assert not is_ready(task(dependencies=["bd-2"]), {"bd-2": TaskStatus.FAILED}, NOW)
    assert is_ready(task(dependencies=["bd-2"]), {"bd-2": TaskStatus.COMPLETED}, NOW)


def test_skills_and_order() -> None:
    t = task(required_skills=["python", "sql"])
    assert has_skills(t, None)
    assert has_skills(t, ["sql", "python", "go"])
    assert not has_skills(t, ["python"])
    crit = task(id="bd-c", priority="critical", created_at=NOW + timedelta(hours=1))
    old_low = task(id="bd-l", priority="low")
    assert sorted([old_low, crit], key=claim_order_key) == [crit, old_low]


def test_find_cycle_and_closure() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": []}
    assert find_cycle("c", ["a"], lambda n: graph.get(n, [])) == ["c", "a", "b", "c"]
    assert find_cycle("d", ["a"], lambda n: graph.get(n, [])) is None
    dependants = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert dependants_closure("a", lambda n: dependants.get(n, [])) == ["b", "c", "d"]


def test_back_off_doubles_and_caps() -> None:
    assert [retry_delay_ms(i, 1000) for i in range(4)] == [1000, 2000, 4000, 8000]
    assert retry_delay_ms(200, 1000) == 6 * 3600 * 1000
    with pytest.raises(ValueError, match="must be >= 0"):
        retry_delay_ms(-1)


def test_failure_retries_then_fails() -> None:
    first = next_after_failure(task(max_retries=1), NOW, 1000)
    assert first.status is TaskStatus.READY and first.retry_count == 1
    assert first.not_before == NOW + timedelta(seconds=1)
    last = next_after_failure(task(max_retries=1, retry_count=1), NOW, 1000)
    assert last.status is TaskStatus.FAILED and last.not_before is None


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("./src/a.py", "src/a.py"),
        ("src//a.py", "src/a.py"),
        ("src/x/../a.py", "src/a.py"),
        (".", "**"),
    ],
)
def test_normalize_lease_path(raw: str, norm: str) -> None:
    assert normalize_lease_path(raw) == norm


@pytest.mark.parametrize("bad", ["", "   ", "../x", "/etc/passwd", "a/../../b", "C:/x", "a\x00b"])
def test_normalize_refuses_escapes(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        normalize_lease_path(bad)
    assert info.value.field == "path"


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("src/a.py", "src/a.py", True),
        ("src/a.py", "src/b.py", False),
        ("src/**", "src/deep/x/y.py", True),
        ("src/**", "src", True),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/a/b.py", False),
        ("src/*.py", "src/*.ts", False),
        ("src/a*", "src/*b", True),
        ("src/**/test_*.py", "src/x/test_a.py", True),
        ("docs/**", "src/**", False),
        ("**", "anything/at/all", True),
        ("src/?.py", "src/ab.py", False),
    ],
)
def test_paths_overlap(a: str, b: str, overlap: bool) -> None:
    assert paths_overlap(a, b) is overlap
    assert paths_overlap(b, a) is overlap


def keys(fused: list[tuple[str, float]]) -> list[str]:
    return [key for key, _ in fused]


def test_fusion_formula() -> None:
    """0.8 x min-max cosine + 0.2 x BM25 / best BM25; a key missing from a list gets 0 there."""
    fused = dict(
        fuse_hybrid(
            [("a", 4.0), ("b", 3.0), ("c", 2.5)],
            [("b", 0.9), ("d", 0.7), ("a", 0.5)],
        )
    )
    assert fused == pytest.approx(
        {"a": 0.2, "b": 0.8 + 0.2 * 3 / 4, "c": 0.2 * 2.5 / 4, "d": 0.8 * 0.5}
    )


def test_semantic_answer_beats_weak_lexical_distractors() -> None:
    """Same-topic notes that share common words with the query do not bury the answer
    only the embedding finds (what reciprocal rank fusion did: a key in both lists won)."""
    text = [(f"topic-{i}", 6.0 - i / 10) for i in range(20)]
    semantic = [("answer", 0.62)] + [(f"topic-{i}", 0.45 - i / 100) for i in range(20)]
    assert keys(fuse_hybrid(text, semantic))[0] == "answer"


def test_lexical_evidence_breaks_near_ties_of_the_embedding() -> None:
    fused = fuse_hybrid([("b", 5.0), ("x", 4.0)], [("a", 0.80), ("b", 0.79), ("c", 0.10)])
    assert keys(fused)[:2] == ["b", "a"]


def test_a_decisive_lexical_match_leads_even_without_a_vector() -> None:
    """An exact identifier (best BM25 >= 2 x the runner-up) leads, even when absent from
    the vector results (no vector yet, or the embedding misses it)."""
    semantic = [(f"s{i}", 0.9 - i / 100) for i in range(50)]
    fused = fuse_hybrid([("bd-7f3a", 20.0), ("other", 6.0)], semantic)
    assert fused[0] == ("bd-7f3a", pytest.approx(1.2))
    assert keys(fuse_hybrid([("only", 3.0)], semantic))[0] == "only", "a lone hit is decisive"
    not_decisive = fuse_hybrid([("t", 10.0), ("u", 6.0)], semantic)
    assert keys(not_decisive)[0] == "s0"
    assert keys(fuse_hybrid([("t", 10.0), ("u", 6.0)], semantic, decisive_ratio=1.5))[0] == "t"


def test_fusion_edges() -> None:
    assert fuse_hybrid([], []) == []
    assert dict(fuse_hybrid([("a", 2.0), ("b", 1.5)], [])) == pytest.approx({"a": 0.2, "b": 0.15})
    assert fuse_hybrid([], [("a", 0.3), ("b", 0.5)]) == [("b", 0.8), ("a", 0.0)]
    assert fuse_hybrid([], [("a", 0.4), ("b", 0.4)]) == [("a", 0.8), ("b", 0.8)], "ties: order"
    assert fuse_hybrid([("a", 0.0), ("b", -2.0)], [("c", 0.1)]) == [
        ("c", 0.8),
        ("a", 0.0),
        ("b", 0.0),
    ], "BM25 of 0 or less is no lexical evidence (and never decisive)"
    assert fuse_hybrid([("a", 3.0), ("a", 1.0), ("b", 1.0)], []) == fuse_hybrid(
        [("a", 3.0), ("b", 1.0)], []
    ), "the first score of a repeated key counts"
    text, semantic = [("a", 2.0), ("b", 1.9), ("c", 0.4)], [("c", 0.9), ("a", 0.2), ("d", 0.5)]
    fused = fuse_hybrid(text, semantic)
    assert keys(fused) == ["c", "d", "a", "b"]
    assert fuse_hybrid(text[::-1], semantic[::-1]) == fused, "scores decide, not input order"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": [("a", float("nan"))]}, "text"),
        ({"semantic": [("a", float("inf"))]}, "semantic"),
        ({"semantic": [("a", "0.5")]}, "semantic"),
        ({"text_weight": 1.5}, "text_weight"),
        ({"decisive_ratio": 0.5}, "decisive_ratio"),
    ],
)
def test_fusion_refuses_bad_input(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"text": [("a", 1.0)], "semantic": [("a", 0.5)], **kwargs}
    with pytest.raises(ValidationError) as caught:
        fuse_hybrid(**args)
    assert caught.value.field == field


def test_retention_score_prefers_important_recent_used() -> None:
    fresh = retention_score(0.9, NOW, 10, NOW)
    stale = retention_score(0.9, NOW - timedelta(days=60), 10, NOW)
    unused = retention_score(0.9, NOW, 0, NOW)
    minor = retention_score(0.1, NOW, 10, NOW)
    assert fresh > stale and fresh > unused and fresh > minor
    assert 0.0 <= minor <= fresh <= 1.0


def test_ids() -> None:
    assert base36(0) == "0" and base36(35) == "z" and base36(36) == "10"
    ids = {new_task_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(i.startswith("bd-") for i in ids)


# The recursive definition of overlap (the oracle), the longest patterns and the normal forms
# are the lease path kit's (jetpack.shared.testing.judge_lease_path_rules), which judges these
# rules in test_shared_testing_paths.py and the Worker's TypeScript copy in jetpack-cf-mail.


def test_resettle_places_waiting_tasks() -> None:
    status = {"done": TaskStatus.COMPLETED, "open": TaskStatus.PENDING}
    status |= {"bad": TaskStatus.FAILED, "stuck": TaskStatus.BLOCKED}
    of = status.get
    assert resettle(task(), of) == (TaskStatus.READY, [])
    assert resettle(task(dependencies=["done"]), of) == (TaskStatus.READY, [])
    assert resettle(task(dependencies=["done", "open"]), of) == (TaskStatus.PENDING, [])
    assert resettle(task(blockers=["legal"]), of) == (TaskStatus.PENDING, ["legal"])
    assert resettle(task(dependencies=["bad"]), of) == (
        TaskStatus.BLOCKED,
        ["dependency bad failed"],
    )
    assert resettle(task(dependencies=["open", "stuck"]), of) == (
        TaskStatus.BLOCKED,
        ["dependency stuck blocked"],
    )
    # a blocker naming a task no longer failed is dropped; blocked by hand stays blocked
    lifted = task(status="blocked", dependencies=["open"], blockers=["dependency open failed"])
    assert resettle(lifted, of) == (TaskStatus.PENDING, [])
    assert resettle(task(status="blocked"), of) == (TaskStatus.BLOCKED, [])
    held = task(status="claimed", dependencies=["bad"])
    assert resettle(held, of) == (TaskStatus.CLAIMED, [])
    assert blocker_for("x", TaskStatus.COMPLETED) is None
    assert blocker_names("dependency bd-1 failed") == "bd-1"
    assert blocker_names("needs a decision") is None


def test_plan_block_and_topological_order() -> None:
    tasks = {
        "b": task(id="b", dependencies=["a"]),
        "c": task(id="c", dependencies=["b"], status="completed"),
        "d": task(id="d", dependencies=["b"], status="claimed"),
        "e": task(id="e", dependencies=["c", "d"]),
    }
    below = {"a": ["b"], "b": ["c", "d"], "c": ["e"], "d": ["e"]}
    plan = plan_block("a", "dependency a failed", lambda n: below.get(n, []), tasks.get)
    assert plan == [("b", ["dependency a failed"]), ("e", ["dependency a failed"])]
    deps = {t.id: t.dependencies for t in tasks.values()}
    assert topological_order(["e", "d", "c", "b"], lambda n: deps.get(n, [])) == [
        "b",
        "d",
        "c",
        "e",
    ]


def test_plan_rebase_drops_blockers_an_edit_made_stale() -> None:
    """root (failed) above x above y, blocked naming root; z names x, through w."""
    label = "dependency root failed"
    tasks = {
        "root": task(id="root", status="failed"),
        "x": task(id="x", status="blocked", blockers=[label]),  # its edge to root just removed
        "y": task(id="y", status="blocked", dependencies=["x"], blockers=[label]),
        "w": task(id="w", status="blocked", dependencies=["x"], blockers=["dependency x blocked"]),
        "z": task(id="z", status="blocked", dependencies=["w"], blockers=["dependency x blocked"]),
        "done": task(id="done", status="completed", dependencies=["x"], blockers=[label]),
    }
    edges = [(t.id, d) for t in tasks.values() for d in t.dependencies]
    status = {t.id: t.status for t in tasks.values()}
    plan = plan_rebase(["x", "y", "w", "z", "done"], edges, tasks.get, status.get)
    assert plan == [
        ("x", TaskStatus.READY, []),
        ("y", TaskStatus.PENDING, []),
        ("w", TaskStatus.PENDING, []),
        ("done", TaskStatus.COMPLETED, []),  # a final task keeps its status, loses the label
        ("z", TaskStatus.PENDING, []),  # names x without depending on it directly
    ]
    # with root still above x (the edge kept), nothing is stale: no change
    assert plan_rebase(["x", "y"], [*edges, ("x", "root")], tasks.get, status.get) == []


def test_status_change_keeps_the_claim_invariants() -> None:
    claimed = task(status="claimed", assigned_agent="a1", claim_expires_at=NOW)
    with pytest.raises(ValidationError) as info:
        status_change(task(), TaskStatus.CLAIMED, NOW)
    assert info.value.field == "status"
    assert status_change(claimed, TaskStatus.CLAIMED, NOW) == {}
    assert status_change(claimed, TaskStatus.PENDING, NOW) == {
        "claim_expires_at": None,
        "assigned_agent": None,
    }
    assert status_change(claimed, TaskStatus.COMPLETED, NOW) == {
        "claim_expires_at": None,
        "completed_at": NOW,
    }
    reopened = task(status="completed", completed_at=NOW)
    assert status_change(reopened, TaskStatus.PENDING, NOW) == {"completed_at": None}
    with pytest.raises(ValidationError):
        check_imported(task(status="in_progress", assigned_agent="a1"))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, 2.5, None, True, "x"]}, None),
        ({"a": float("nan")}, "finite"),
        ({1: "x"}, "not a string"),
        ({"\ud800": 1}, "lone surrogate"),
        ({"a": ["ok", "\udfff"]}, "lone surrogate"),
        ({"a": {1, 2}}, "JSON cannot hold"),
    ],
)
def test_json_problem(value: object, problem: str | None) -> None:
    found = json_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_json_problem_depth_is_iterative() -> None:
    deep: dict[str, object] = {}
    for _ in range(100_000):
        deep = {"a": deep}
    assert json_problem(deep) == f"nests objects and lists deeper than {MAX_JSON_DEPTH} levels"
    ok: dict[str, object] = {}
    for _ in range(MAX_JSON_DEPTH - 1):
        ok = {"a": ok}
    assert json_problem(ok) is None


def test_ttl_and_text_checks() -> None:
    assert check_ttl(MAX_TTL_MS) == MAX_TTL_MS
    for bad in (0, -1, MAX_TTL_MS + 1, 2**62, True, 1.5):
        with pytest.raises(ValidationError):
            check_ttl(bad)
    with pytest.raises(ValidationError) as info:
        check_text("a\ud800", "query")
    assert info.value.field == "query" and "surrogate" in info.value.reason


def test_outgoing_unpacks_a_message() -> None:
    draft = Message(
        id="msg-1", type=MessageType.TASK_PROGRESS, from_agent="a1", timestamp=NOW, payload={"x": 1}
    )
    out = outgoing("a1", draft, None, None, None, None)
    assert (out.type, out.payload, out.ack_required) == (MessageType.TASK_PROGRESS, {"x": 1}, False)
    assert outgoing("a1", "heartbeat", None, None, None, "a2").ack_required is True
    for args, field in [
        (("a2", draft, None, None, None, None), "from_agent"),
        (("a1", draft, {"y": 2}, None, None, None), "payload"),
        (("a1", draft.model_copy(update={"to_agent": "a3"}), None, None, None, "a2"), "to_agent"),
    ]:
        with pytest.raises(ValidationError) as info:
            outgoing(*args)  # type: ignore[arg-type]
        assert info.value.field == field


def test_float32_problem() -> None:
    assert float32_problem(1.0, True, True) is None
    assert "zero vector" in (float32_problem(0.0, False, False) or "")
    assert "1e+39" in (float32_problem(1e39, True, True) or "")
    assert "smallest step" in (float32_problem(1e-50, True, False) or "")


def test_unknown_options_are_refused_by_name() -> None:
    def factory(path: str, *, ttl_ms: int = 1, pool_size: int = 4, **unknown: object) -> None:
        check_options(unknown, option_names(factory))

    factory("p", ttl_ms=2, pool_size=1)
    assert option_names(factory) == {"path", "ttl_ms", "pool_size"}
    with pytest.raises(ValidationError) as info:
        factory("p", pool_sise=2)
    assert info.value.field == "pool_sise"
    assert "did you mean 'pool_size'" in str(info.value)
    with pytest.raises(ValidationError) as info:
        factory("p", colour="red")
    assert info.value.field == "colour" and "did you mean" not in str(info.value)
