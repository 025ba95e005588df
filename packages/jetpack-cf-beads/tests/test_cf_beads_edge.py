"""What the edge adds to the kit: URL-safe ids, big batches in parts, idempotent retries,
combined filters, concurrent graph edits, and the tightened task rules, on a real Worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from jetpack.cf_beads import CloudflareTaskStore
from jetpack.shared import TaskStatus, utcnow
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError
from jetpack.shared.testing.edge import EdgeProject


@pytest_asyncio.fixture
async def store(edge_project: EdgeProject) -> AsyncIterator[CloudflareTaskStore]:
    async with CloudflareTaskStore(edge_project.url, edge_project.token, retry_base_ms=200) as s:
        yield s


async def test_ids_with_slashes_and_colons_survive_the_url(store: CloudflareTaskStore) -> None:
    task = await store.create_task({"id": "team/web:bd-1.x", "title": "t"})
    assert (await store.get_task("team/web:bd-1.x")) == task
    claimed = await store.claim_task(task.id, "agent/1")
    assert claimed is not None
    done = await store.complete_task(task.id, "agent/1")
    assert done.status is TaskStatus.COMPLETED
    assert await store.get_task("team") is None
    with pytest.raises(NotFoundError):
        await store.claim_task("has spaces", "agent-1")


async def test_a_batch_over_one_mib_is_one_transaction(store: CloudflareTaskStore) -> None:
    items = [{"id": f"big-{i}", "title": f"t{i}", "description": "d" * 600} for i in range(2500)]
    bad = [*items, {"title": "orphan", "dependencies": ["nowhere"]}]
    with pytest.raises(ValidationError) as info:
        await store.create_tasks(bad)
    assert info.value.field == "dependencies"
    assert await store.list_tasks({"limit": 1}) == []
    made = await store.create_tasks(items)
    assert [t.id for t in made] == [i["id"] for i in items]
    assert len(await store.list_tasks()) == 2500
    whole = [t.model_copy(update={"id": f"copy-{t.id}"}) for t in made]
    assert await store.import_tasks(whole) == 2500
    assert (await store.get_stats()).total == 5000


async def test_a_retried_claim_with_its_key_claims_once(edge_project: EdgeProject) -> None:
    """The key is recorded inside the route's own D1 batch; a repeat replays the first answer."""
    async with CloudflareTaskStore(edge_project.url, edge_project.token) as store:
        await store.create_tasks([{"title": "a"}, {"title": "b"}])
    auth = {"Authorization": f"Bearer {edge_project.token}"}
    headers = {**auth, "Idempotency-Key": "claim-once-1"}
    async with httpx.AsyncClient(base_url=edge_project.url, headers=headers) as http:
        first = await http.post("/api/tasks/claim-next", json={"agent_id": "a1"})
        while (
            again := await http.post("/api/tasks/claim-next", json={"agent_id": "a1"})
        ).status_code == 409:
            assert again.json()["error"]["code"] == "in_progress"  # first answer not kept yet
            await asyncio.sleep(0.05)
        elsewhere = await http.post("/api/tasks", json={"title": "c"})
        # One D1 call for the whole claim: key, sweep and claim in one batch (the token cached).
        fresh = {**auth, "Idempotency-Key": "claim-once-2"}
        second = await http.post("/api/tasks/claim-next", json={"agent_id": "a2"}, headers=fresh)
        assert 'desc="1 D1 calls"' in second.headers["Server-Timing"], second.headers
        create = {**auth, "Idempotency-Key": "create-once-1"}
        made = [await http.post("/api/tasks", json={"title": "once"}, headers=create)]
        while (
            repeat := await http.post("/api/tasks", json={"title": "once"}, headers=create)
        ).status_code == 409:
            assert repeat.json()["error"]["code"] == "in_progress"  # first answer not kept yet
            await asyncio.sleep(0.05)
        made.append(repeat)
    assert first.json() == again.json() and first.json()["task"] is not None
    assert again.headers["Idempotent-Replayed"] == "true"
    assert elsewhere.status_code == 422 and elsewhere.json()["error"]["field"] == "Idempotency-Key"
    assert [m.status_code for m in made] == [201, 201] and made[0].json() == made[1].json()
    async with CloudflareTaskStore(edge_project.url, edge_project.token) as store:
        assert len(await store.get_tasks_by_agent("a1")) == 1
        assert sorted(t.title for t in await store.list_tasks()) == ["a", "b", "once"]


async def test_a_key_is_kept_only_with_the_write_it_stands_for(edge_project: EdgeProject) -> None:
    """The key rides in the batch of the route's first write (no D1 call of its own, never
    kept without that write): a request that wrote nothing (here a refusal after a read; or
    one whose Worker died before writing) holds no key, so its retry runs at once instead of
    waiting out a pending key. A key that wrote is replayed as before."""
    async with CloudflareTaskStore(edge_project.url, edge_project.token) as store:
        await store.create_tasks(
            [
                {"id": "p", "title": "P"},
                {"id": "c", "title": "C", "dependencies": ["p"]},
                {"id": "x", "title": "X"},
                {"id": "y", "title": "Y"},
            ]
        )
        for task_id in ("x", "y"):
            assert await store.claim_task(task_id, "a1") is not None
    auth = {"Authorization": f"Bearer {edge_project.token}"}
    keyed = {**auth, "Idempotency-Key": "delete-p"}
    async with httpx.AsyncClient(base_url=edge_project.url, headers=auth) as http:
        refused = await http.delete("/api/tasks/p", headers=keyed)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "has_dependants"
        assert (await http.delete("/api/tasks/c")).status_code < 300
        deleted = await http.delete("/api/tasks/p", headers=keyed)  # the same key runs afresh
        assert deleted.status_code < 300, deleted.text
        assert "Idempotent-Replayed" not in deleted.headers
        while (again := await http.delete("/api/tasks/p", headers=keyed)).status_code == 409:
            assert again.json()["error"]["code"] == "in_progress"  # first answer not kept yet
            await asyncio.sleep(0.05)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.status_code == deleted.status_code

        def calls(answer: httpx.Response) -> str:
            return answer.headers["Server-Timing"].split("desc=")[1]

        body = {"agent_id": "a1"}
        plain = await http.post("/api/tasks/x/complete", json=body)
        key = {**auth, "Idempotency-Key": "complete-y"}
        with_key = await http.post("/api/tasks/y/complete", json=body, headers=key)
        assert plain.status_code == with_key.status_code == 200, with_key.text
        assert calls(with_key) == calls(plain), "the key took a D1 call of its own"


async def test_filters_combine(store: CloudflareTaskStore) -> None:
    made = await store.create_tasks(
        [{"title": f"t{i}", "priority": ["high", "low"][i % 2]} for i in range(8)]
    )
    for task in made[:5]:
        await store.claim_task(task.id, "agent-a" if task.title != "t1" else "agent-b")
    found = await store.list_tasks(
        {
            "status": ["claimed", "in_progress"],
            "priority": ["high"],
            "assigned_agent": "agent-a",
            "limit": 1,
            "offset": 1,
        }
    )
    assert [t.id for t in found] == [made[2].id]


async def test_concurrent_graph_edits_never_close_a_cycle(store: CloudflareTaskStore) -> None:
    for _ in range(5):
        a, b = await store.create_tasks([{"title": "a"}, {"title": "b"}])
        results = await asyncio.gather(
            store.update_task(a.id, {"dependencies": [b.id]}),
            store.update_task(b.id, {"dependencies": [a.id]}),
            return_exceptions=True,
        )
        assert sum(isinstance(r, ConflictError) for r in results) == 1, results
        after_a, after_b = await store.get_task(a.id), await store.get_task(b.id)
        assert after_a is not None and after_b is not None
        assert not (after_a.dependencies and after_b.dependencies)


# -- the tightened task rules (the contract-holes issue) ------------------------------------


async def _failed(store: CloudflareTaskStore, title: str = "root") -> str:
    root = await store.create_task({"title": title, "max_retries": 0})
    await store.claim_task(root.id, "agent-1")
    await store.fail_task(root.id, "agent-1", "fatal")
    return root.id


async def test_a_new_dependant_of_a_failed_or_blocked_task_is_blocked(
    store: CloudflareTaskStore,
) -> None:
    root = await _failed(store)
    child = await store.create_task({"title": "child", "dependencies": [root]})
    assert child.status is TaskStatus.BLOCKED and f"dependency {root} failed" in child.blockers
    grandchild = await store.create_task({"title": "gc", "dependencies": [child.id]})
    assert grandchild.status is TaskStatus.BLOCKED
    assert grandchild.blockers == [f"dependency {child.id} blocked"], "names its own dependency"
    later = await store.create_task({"title": "later"})
    edited = await store.update_task(later.id, {"dependencies": [root]})
    assert edited.status is TaskStatus.BLOCKED and edited.blockers == [f"dependency {root} failed"]
    now = utcnow()
    imported = await store.import_tasks(
        [
            {
                "id": "imp-1",
                "title": "i",
                "dependencies": [root],
                "created_at": now,
                "updated_at": now,
            }
        ]
    )
    assert imported == 1
    got = await store.get_task("imp-1")
    assert got is not None and got.status is TaskStatus.BLOCKED


async def test_status_set_to_failed_by_update_blocks_dependants(store: CloudflareTaskStore) -> None:
    parent = await store.create_task({"title": "p"})
    child = await store.create_task({"title": "c", "dependencies": [parent.id]})
    await store.update_task(parent.id, {"status": "failed"})
    after = await store.get_task(child.id)
    assert after is not None and after.status is TaskStatus.BLOCKED


async def test_claim_invariants_hold_through_update_and_import(store: CloudflareTaskStore) -> None:
    task = await store.create_task({"title": "t"})
    with pytest.raises(ValidationError) as info:
        await store.update_task(task.id, {"status": "claimed"})
    assert info.value.field == "status"
    now = utcnow()
    with pytest.raises(ValidationError) as info:
        await store.import_tasks(
            [
                {
                    "id": "held",
                    "title": "h",
                    "status": "claimed",
                    "created_at": now,
                    "updated_at": now,
                }
            ]
        )
    assert info.value.field == "status"
    assert await store.get_task("held") is None
    await store.claim_task(task.id, "agent-1")
    reopened = await store.update_task(task.id, {"status": "pending"})
    assert reopened.assigned_agent is None and reopened.claim_expires_at is None


@pytest.mark.parametrize("action", ["renew", "start", "complete", "fail"])
async def test_a_lapsed_claim_is_lost_for_good(store: CloudflareTaskStore, action: str) -> None:
    task = await store.create_task({"title": "t", "max_retries": 3})
    await store.claim_task(task.id, "agent-1", ttl_ms=100)
    await asyncio.sleep(0.25)
    calls = {
        "renew": lambda: store.renew_claim(task.id, "agent-1"),
        "start": lambda: store.start_task(task.id, "agent-1"),
        "complete": lambda: store.complete_task(task.id, "agent-1"),
        "fail": lambda: store.fail_task(task.id, "agent-1", "late"),
    }
    with pytest.raises(ConflictError):
        await calls[action]()
    after = await store.get_task(task.id)
    assert after is not None and after.assigned_agent is None
    assert after.status is TaskStatus.READY and after.retry_count == 1
    assert after.failure_type is not None and after.failure_type.value == "stalled"
    with pytest.raises(ConflictError):
        await store.complete_task(task.id, "agent-1")


async def test_bad_ttls_metadata_and_text_name_the_field(store: CloudflareTaskStore) -> None:
    task = await store.create_task({"title": "t"})
    for ttl in (366 * 86_400_000, 2**62):
        with pytest.raises(ValidationError) as info:
            await store.claim_next("agent-1", ttl_ms=ttl)
        assert info.value.field == "ttl_ms"
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with pytest.raises(ValidationError) as info:
        await store.create_task({"title": "deep", "metadata": deep})
    assert info.value.field.startswith("metadata")
    with pytest.raises(ValidationError) as info:
        await store.create_task({"title": "bad \ud800 text"})
    assert info.value.field == "title"
    with pytest.raises(ValidationError) as info:
        await store.update_task(task.id, {"max_retries": None})
    assert info.value.field == "max_retries"
    assert [t.id for t in await store.list_tasks()] == [task.id]
    still = await store.get_task(task.id)
    assert still is not None and still.status is TaskStatus.READY


async def test_the_last_dependency_completing_makes_a_pending_task_ready(
    store: CloudflareTaskStore,
) -> None:
    a, b = await store.create_tasks([{"title": "a"}, {"title": "b"}])
    child = await store.create_task({"title": "c", "dependencies": [a.id, b.id]})
    for dep in (a, b):
        await store.claim_task(dep.id, "agent-1")
        await store.complete_task(dep.id, "agent-1")
        after = await store.get_task(child.id)
        assert after is not None
        assert after.status is (TaskStatus.READY if dep is b else TaskStatus.PENDING)


async def test_a_failure_blocks_the_closure_naming_the_root_cause(
    store: CloudflareTaskStore,
) -> None:
    root = await store.create_task({"title": "root", "max_retries": 0})
    child = await store.create_task({"title": "child", "dependencies": [root.id]})
    grandchild = await store.create_task({"title": "gc", "dependencies": [child.id]})
    by_hand = await store.create_task(
        {"title": "by hand", "dependencies": [child.id], "status": "blocked", "blockers": ["wait"]}
    )
    await store.claim_task(root.id, "agent-1")
    await store.fail_task(root.id, "agent-1", "fatal")
    label = f"dependency {root.id} failed"
    for task_id, blockers in (
        (child.id, [label]),
        (grandchild.id, [label]),
        (by_hand.id, ["wait", label]),
    ):
        after = await store.get_task(task_id)
        assert after is not None and after.status is TaskStatus.BLOCKED
        assert after.blockers == blockers
    reopened = await store.update_task(root.id, {"status": "pending"})
    assert reopened.status is TaskStatus.READY
    for task_id, status, blockers in (
        (child.id, TaskStatus.PENDING, []),
        (grandchild.id, TaskStatus.PENDING, []),
        (by_hand.id, TaskStatus.PENDING, ["wait"]),
    ):
        after = await store.get_task(task_id)
        assert after is not None and (after.status, after.blockers) == (status, blockers)


@pytest.mark.parametrize("way", ["release", "fail", "lapse"])
async def test_a_held_dependant_is_placed_when_it_returns_to_the_queue(
    store: CloudflareTaskStore, way: str
) -> None:
    """Blocking skips a held task; back in the queue, the whole ready rule places it."""
    dep = await store.create_task({"title": "dep"})
    await store.claim_task(dep.id, "agent-1")
    await store.complete_task(dep.id, "agent-1")
    task = await store.create_task({"title": "t", "dependencies": [dep.id], "max_retries": 2})
    below = await store.create_task({"title": "below", "dependencies": [task.id]})
    held = await store.claim_task(task.id, "agent-2", ttl_ms=300 if way == "lapse" else None)
    assert held is not None
    await store.update_task(dep.id, {"status": "failed"})
    label = f"dependency {dep.id} failed"
    still = await store.get_task(task.id)
    assert still is not None and still.status is TaskStatus.CLAIMED and still.blockers == []
    under = await store.get_task(below.id)
    assert under is not None and under.status is TaskStatus.BLOCKED and under.blockers == [label]
    if way == "release":
        assert await store.release_task(task.id, "agent-2") is True
    elif way == "fail":
        failed = await store.fail_task(task.id, "agent-2", "boom")
        assert failed.status is TaskStatus.BLOCKED and failed.blockers == [label]
    else:
        await asyncio.sleep(0.45)
        recovered = await store.recover_expired_claims()
        assert [(t.id, t.status) for t in recovered] == [(task.id, TaskStatus.BLOCKED)]
    back = await store.get_task(task.id)
    assert back is not None and back.assigned_agent is None
    assert back.status is TaskStatus.BLOCKED and back.blockers == [label]
    await store.update_task(dep.id, {"status": "completed"})
    for task_id, status in ((task.id, TaskStatus.READY), (below.id, TaskStatus.PENDING)):
        after = await store.get_task(task_id)
        assert after is not None and after.status is status and after.blockers == []
