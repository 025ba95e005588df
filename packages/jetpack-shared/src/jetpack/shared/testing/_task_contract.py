"""TaskStoreContract: the behaviour every TaskStore keeps.

Subclass it in a backend's tests and supply ``store_spec``::

    class TestBeadsContract(TaskStoreContract):
        multiprocess = True

        @pytest.fixture
        def store_spec(self, tmp_path):
            return StoreSpec("jetpack.beads:BeadsAdapter", {"db_path": str(tmp_path / "b.db")})

A failing test names the rule in its docstring; fix the backend, not the test.
A backend that cannot meet a rule marks that test ``xfail(strict=True)`` with a
reason in its subclass; it never deletes or overrides it silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from jetpack.shared import (
    MAX_JSON_DEPTH,
    FailureType,
    Task,
    TaskPriority,
    TaskStatus,
    TaskStore,
    utcnow,
)
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError
from jetpack.shared.rules import MAX_TTL_MS
from jetpack.shared.testing._children import run_children
from jetpack.shared.testing._guard import KitContract
from jetpack.shared.testing._procs import claim_worker
from jetpack.shared.testing._spec import StoreSpec

__all__ = ["TaskStoreContract"]

BASE_MS = 300


def nested(depth: int) -> dict[str, Any]:
    """A JSON object nested ``depth`` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def names(task: Task | None, blocker_id: str) -> bool:
    """True when ``task`` is blocked with a blocker naming ``blocker_id``."""
    return (
        task is not None
        and task.status is TaskStatus.BLOCKED
        and any(blocker_id in b for b in task.blockers)
    )


class TaskStoreContract(KitContract, kit=True):
    """Conformance tests for :class:`jetpack.shared.TaskStore` backends.

    Set ``multiprocess = True`` when the backend is safe across OS processes;
    claim races then run in 4 processes too.

    What a failure usually means: "Troubleshooting" in jetpack-shared's README.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]
    multiprocess_tests: ClassVar[tuple[str, ...]] = ("test_claim_race_across_processes",)

    @pytest.fixture
    def store_spec(self, tmp_path: Any) -> StoreSpec:
        """Abstract: return a StoreSpec for an empty store private to this test."""
        raise NotImplementedError("subclass TaskStoreContract and override the store_spec fixture")

    @pytest_asyncio.fixture
    async def store(self, store_spec: StoreSpec) -> AsyncIterator[TaskStore]:
        """An open, empty store with a short retry back-off (``retry_base_ms=300``)."""
        async with store_spec.build(retry_base_ms=BASE_MS) as store:
            yield store

    async def test_unknown_option_is_refused_by_name(self, store_spec: StoreSpec) -> None:
        """An option the store does not take is a ValidationError naming it (never ignored)."""
        with pytest.raises(ValidationError) as info:
            store_spec.build(no_such_option=1)
        assert info.value.field == "no_such_option"

    # -- create / read -----------------------------------------------------

    async def test_create_then_get_round_trips(self, store: TaskStore) -> None:
        """create_task returns the stored task and get_task returns the same values."""
        created = await store.create_task(
            {
                "title": "Write the parser",
                "description": "tokens → AST",
                "priority": "high",
                "required_skills": ["python"],
                "tags": ["parser"],
                "estimated_minutes": 30,
                "metadata": {"files": ["src/parser.py"]},
            }
        )
        assert created.id.startswith("bd-")
        assert created.status is TaskStatus.READY, "nothing keeps it waiting: stored ready"
        assert created.created_at.tzinfo is not None
        fetched = await store.get_task(created.id)
        assert fetched == created
        assert fetched is not None and fetched.metadata == {"files": ["src/parser.py"]}

    async def test_get_unknown_returns_none(self, store: TaskStore) -> None:
        """get_task of an unknown id is None, not an error."""
        assert await store.get_task("bd-missing") is None

    async def test_generated_ids_are_unique(self, store: TaskStore) -> None:
        """Generated ids never collide."""
        tasks = await store.create_tasks([{"title": f"t{i}"} for i in range(200)])
        assert len({t.id for t in tasks}) == 200

    async def test_existing_id_is_a_conflict_not_an_overwrite(self, store: TaskStore) -> None:
        """Creating an existing id raises ConflictError and keeps the original."""
        await store.create_task({"id": "bd-fixed", "title": "original"})
        with pytest.raises(ConflictError):
            await store.create_task({"id": "bd-fixed", "title": "impostor"})
        task = await store.get_task("bd-fixed")
        assert task is not None and task.title == "original"

    async def test_unknown_dependency_is_refused(self, store: TaskStore) -> None:
        """A dependency on an unknown id is a ValidationError naming 'dependencies'."""
        with pytest.raises(ValidationError) as info:
            await store.create_task({"title": "orphan", "dependencies": ["bd-nope"]})
        assert info.value.field == "dependencies"
        assert await store.list_tasks() == []

    async def test_dependency_cycle_is_refused(self, store: TaskStore) -> None:
        """An update that closes a cycle raises ConflictError and changes nothing."""
        a = await store.create_task({"title": "a"})
        b = await store.create_task({"title": "b", "dependencies": [a.id]})
        c = await store.create_task({"title": "c", "dependencies": [b.id]})
        with pytest.raises(ConflictError):
            await store.update_task(a.id, {"dependencies": [c.id]})
        after = await store.get_task(a.id)
        assert after is not None and after.dependencies == [] and after.version == a.version

    async def test_self_dependency_is_refused(self, store: TaskStore) -> None:
        """A task cannot depend on itself."""
        with pytest.raises(ConflictError):
            await store.create_task({"id": "bd-self", "title": "me", "dependencies": ["bd-self"]})
        assert await store.get_task("bd-self") is None

    async def test_create_tasks_is_all_or_nothing(self, store: TaskStore) -> None:
        """A batch with one bad item writes nothing; later items may depend on earlier ones."""
        with pytest.raises(ValidationError):
            await store.create_tasks([{"id": "bd-ok", "title": "fine"}, {"title": ""}])
        assert await store.list_tasks() == []
        made = await store.create_tasks(
            [
                {"id": "bd-first", "title": "first"},
                {"title": "second", "dependencies": ["bd-first"]},
            ]
        )
        assert made[1].dependencies == ["bd-first"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("title", ""),
            ("title", "x" * 10_000),
            ("priority", "urgent"),
            ("status", "done-ish"),
            ("status", "claimed"),
            ("estimated_minutes", -5),
            ("max_retries", -1),
            ("tags", "not-a-list"),
            ("metadata", {"bad": float("nan")}),
            ("id", "has spaces"),
            ("colour", "blue"),
        ],
    )
    async def test_bad_input_names_the_field_and_writes_nothing(
        self, store: TaskStore, field: str, value: object
    ) -> None:
        """Every invalid field raises ValidationError whose ``.field`` names it; nothing stored."""
        data: dict[str, object] = {"title": "valid title"}
        data[field] = value
        with pytest.raises(ValidationError) as info:
            await store.create_task(data)
        assert info.value.field.split(".")[0] == field
        assert await store.list_tasks() == []

    async def test_import_tasks_keeps_whole_records(self, store: TaskStore) -> None:
        """import_tasks writes ids, statuses and timestamps as given; dependants see them."""
        when = utcnow() - timedelta(days=3)
        done = Task(
            id="bd-old",
            title="done long ago",
            status=TaskStatus.COMPLETED,
            created_at=when,
            updated_at=when,
            completed_at=when,
        )
        child = Task(
            id="bd-kid", title="next", dependencies=["bd-old"], created_at=when, updated_at=when
        )
        assert await store.import_tasks([child, done]) == 2
        assert await store.get_task("bd-old") == done
        assert [t.id for t in await store.get_ready_tasks()] == ["bd-kid"]

    async def test_import_tasks_refuses_conflicts_unknown_ids_and_cycles(
        self, store: TaskStore
    ) -> None:
        """import_tasks is all or nothing: existing ids, unknown dependencies, cycles."""
        now = utcnow()
        await store.create_task({"id": "bd-here", "title": "here"})

        def task(task_id: str, *deps: str) -> Task:
            return Task(
                id=task_id, title=task_id, dependencies=list(deps), created_at=now, updated_at=now
            )

        with pytest.raises(ConflictError):
            await store.import_tasks([task("bd-new"), task("bd-here")])
        with pytest.raises(ValidationError):
            await store.import_tasks([task("bd-new", "bd-nowhere")])
        with pytest.raises(ConflictError):
            await store.import_tasks([task("bd-a", "bd-b"), task("bd-b", "bd-a")])
        assert [t.id for t in await store.list_tasks()] == ["bd-here"]
        assert await store.import_tasks([task("bd-here")], replace=True) == 1

    # -- update / delete ---------------------------------------------------

    async def test_update_applies_set_fields_and_bumps_version(self, store: TaskStore) -> None:
        """update_task changes only the given fields and increments version and updated_at."""
        task = await store.create_task({"title": "old", "tags": ["a"]})
        await asyncio.sleep(0.002)
        new = await store.update_task(task.id, {"title": "new"})
        assert new.title == "new" and new.tags == ["a"]
        assert new.version > task.version and new.updated_at > task.updated_at
        assert new.created_at == task.created_at

    async def test_update_unknown_raises_not_found(self, store: TaskStore) -> None:
        """update_task of an unknown id raises NotFoundError."""
        with pytest.raises(NotFoundError):
            await store.update_task("bd-missing", {"title": "x"})

    async def test_bad_update_changes_nothing(self, store: TaskStore) -> None:
        """An invalid update raises ValidationError naming the field; the task is unchanged."""
        task = await store.create_task({"title": "keep"})
        with pytest.raises(ValidationError) as info:
            await store.update_task(task.id, {"priority": "whenever"})
        assert info.value.field == "priority"
        assert await store.get_task(task.id) == task

    async def test_delete(self, store: TaskStore) -> None:
        """delete_task is True once, then False; a task others depend on cannot be deleted."""
        a = await store.create_task({"title": "a"})
        b = await store.create_task({"title": "b", "dependencies": [a.id]})
        with pytest.raises(ConflictError):
            await store.delete_task(a.id)
        assert await store.delete_task(b.id) is True
        assert await store.delete_task(b.id) is False
        assert await store.delete_task(a.id) is True

    # -- readiness ---------------------------------------------------------

    async def test_ready_rule(self, store: TaskStore) -> None:
        """Ready = open status, every dependency completed, no blockers, back-off passed."""
        dep = await store.create_task({"title": "dep"})
        waiting = await store.create_task({"title": "waiting", "dependencies": [dep.id]})
        blocked = await store.create_task({"title": "blocked", "blockers": ["needs a decision"]})
        ready_ids = {t.id for t in await store.get_ready_tasks()}
        assert dep.id in ready_ids
        assert waiting.id not in ready_ids and blocked.id not in ready_ids
        claimed = await store.claim_task(dep.id, "agent-1")
        assert claimed is not None
        await store.complete_task(dep.id, "agent-1")
        assert waiting.id in {t.id for t in await store.get_ready_tasks()}

    async def test_ready_order_is_priority_then_age(self, store: TaskStore) -> None:
        """get_ready_tasks and claim_next order: critical > high > medium > low, then oldest."""
        low = await store.create_task({"title": "low", "priority": "low"})
        med1 = await store.create_task({"title": "med1"})
        await asyncio.sleep(0.002)
        med2 = await store.create_task({"title": "med2"})
        crit = await store.create_task({"title": "crit", "priority": "critical"})
        order = [t.id for t in await store.get_ready_tasks()]
        assert order == [crit.id, med1.id, med2.id, low.id]
        first = await store.claim_next("agent-1")
        assert first is not None and first.id == crit.id

    # -- claims ------------------------------------------------------------

    async def test_claim_task_sets_holder_and_expiry(self, store: TaskStore) -> None:
        """A claim records the agent, claimed status and a claim expiry in the future."""
        task = await store.create_task({"title": "t"})
        claimed = await store.claim_task(task.id, "agent-1", ttl_ms=60_000)
        assert claimed is not None
        assert claimed.status is TaskStatus.CLAIMED and claimed.assigned_agent == "agent-1"
        assert claimed.claim_expires_at is not None and claimed.claim_expires_at > utcnow()

    async def test_claim_task_second_caller_gets_none(self, store: TaskStore) -> None:
        """A held task cannot be claimed again."""
        task = await store.create_task({"title": "t"})
        assert await store.claim_task(task.id, "agent-1") is not None
        assert await store.claim_task(task.id, "agent-2") is None
        held = await store.get_task(task.id)
        assert held is not None and held.assigned_agent == "agent-1"

    async def test_claim_task_not_ready_gets_none(self, store: TaskStore) -> None:
        """A task with an open dependency cannot be claimed."""
        dep = await store.create_task({"title": "dep"})
        task = await store.create_task({"title": "t", "dependencies": [dep.id]})
        assert await store.claim_task(task.id, "agent-1") is None

    async def test_claim_unknown_raises_not_found(self, store: TaskStore) -> None:
        """claim_task of an unknown id raises NotFoundError."""
        with pytest.raises(NotFoundError):
            await store.claim_task("bd-missing", "agent-1")

    async def test_claim_validates_arguments(self, store: TaskStore) -> None:
        """An empty agent id or a non-positive ttl is a ValidationError naming it."""
        task = await store.create_task({"title": "t"})
        with pytest.raises(ValidationError) as info:
            await store.claim_task(task.id, "")
        assert info.value.field == "agent_id"
        with pytest.raises(ValidationError) as info:
            await store.claim_next("agent-1", ttl_ms=0)
        assert info.value.field == "ttl_ms"
        still = await store.get_task(task.id)
        assert still is not None and still.status is TaskStatus.READY
        assert still.assigned_agent is None

    async def test_claim_next_respects_skills(self, store: TaskStore) -> None:
        """claim_next only takes tasks whose required skills the agent has; None = any."""
        rust = await store.create_task(
            {"title": "rust", "required_skills": ["rust"], "priority": "high"}
        )
        py = await store.create_task({"title": "py", "required_skills": ["python"]})
        got = await store.claim_next("agent-py", ["python", "sql"])
        assert got is not None and got.id == py.id
        assert await store.claim_next("agent-py", ["python"]) is None
        anyone = await store.claim_next("agent-any")
        assert anyone is not None and anyone.id == rust.id

    async def test_claim_next_empty_returns_none(self, store: TaskStore) -> None:
        """claim_next with nothing ready returns None."""
        assert await store.claim_next("agent-1") is None

    async def test_one_task_many_claimers_one_winner(self, store: TaskStore) -> None:
        """60 concurrent claim_task calls on one task: exactly one wins."""
        task = await store.create_task({"title": "contended"})
        results = await asyncio.gather(
            *(store.claim_task(task.id, f"agent-{i}") for i in range(60))
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        final = await store.get_task(task.id)
        assert final is not None and final.assigned_agent == winners[0].assigned_agent

    async def test_claim_next_race_claims_each_task_once(self, store: TaskStore) -> None:
        """60 coroutines draining 40 tasks with claim_next: every task claimed exactly once."""
        await store.create_tasks([{"title": f"t{i}"} for i in range(40)])

        async def drain(agent: str) -> list[str]:
            got: list[str] = []
            while (task := await store.claim_next(agent)) is not None:
                got.append(task.id)
            return got

        claimed = [
            tid for ids in await asyncio.gather(*(drain(f"a{i}") for i in range(60))) for tid in ids
        ]
        assert len(claimed) == 40 and len(set(claimed)) == 40

    async def test_claim_race_across_processes(
        self, store: TaskStore, store_spec: StoreSpec
    ) -> None:
        """4 OS processes racing claim_next: every task claimed exactly once."""
        made = await store.create_tasks([{"title": f"t{i}"} for i in range(120)])
        results = await asyncio.to_thread(
            run_children, claim_worker, [(store_spec, f"proc-{i}") for i in range(4)]
        )
        claimed = [tid for ids in results for tid in ids]
        assert sorted(claimed) == sorted(t.id for t in made), "a task was claimed twice or never"

    # -- release / complete / fail ----------------------------------------

    async def test_release_by_holder_only(self, store: TaskStore) -> None:
        """Only the holder releases; release returns the task to ready without using a retry."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-1")
        assert await store.release_task(task.id, "agent-2") is False
        held = await store.get_task(task.id)
        assert held is not None and held.assigned_agent == "agent-1"
        assert await store.release_task(task.id, "agent-1") is True
        back = await store.get_task(task.id)
        assert back is not None and back.assigned_agent is None and back.retry_count == 0
        assert task.id in {t.id for t in await store.get_ready_tasks()}

    async def test_release_never_reopens_completed(self, store: TaskStore) -> None:
        """Releasing a completed task is refused (False) and it stays completed."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-1")
        await store.complete_task(task.id, "agent-1")
        assert await store.release_task(task.id, "agent-1") is False
        done = await store.get_task(task.id)
        assert done is not None and done.status is TaskStatus.COMPLETED

    async def test_complete_by_non_holder_is_a_conflict(self, store: TaskStore) -> None:
        """complete_task by an agent that does not hold the task raises ConflictError."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-1")
        with pytest.raises(ConflictError):
            await store.complete_task(task.id, "agent-2")

    async def test_start_then_complete(self, store: TaskStore) -> None:
        """start_task marks in_progress; complete_task sets completed_at and actual_minutes."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-1")
        started = await store.start_task(task.id, "agent-1")
        assert started.status is TaskStatus.IN_PROGRESS
        done = await store.complete_task(task.id, "agent-1", actual_minutes=7, result={"ok": True})
        assert done.status is TaskStatus.COMPLETED and done.completed_at is not None
        assert done.actual_minutes == 7 and done.metadata["result"] == {"ok": True}
        assert done.claim_expires_at is None

    async def test_fail_applies_back_off(self, store: TaskStore) -> None:
        """fail_task: retry_count + 1, ready again only after not_before = now + base × 2^retry."""
        task = await store.create_task({"title": "flaky", "max_retries": 2})
        await store.claim_task(task.id, "agent-1")
        failed = await store.fail_task(task.id, "agent-1", "boom", FailureType.ERROR)
        assert failed.retry_count == 1 and failed.last_error == "boom"
        assert failed.failure_type is FailureType.ERROR and failed.assigned_agent is None
        assert failed.not_before is not None and failed.not_before > utcnow()
        assert await store.claim_next("agent-2") is None, "claimed before its back-off passed"
        await asyncio.sleep(BASE_MS / 1000 + 0.1)
        again = await store.claim_next("agent-2")
        assert again is not None and again.id == task.id
        second = await store.fail_task(task.id, "agent-2", "boom again")
        assert second.not_before is not None and failed.not_before is not None
        gap = (second.not_before - second.updated_at).total_seconds()
        assert gap >= 2 * BASE_MS / 1000 * 0.9, "back-off did not double"

    async def test_out_of_retries_fails_and_blocks_dependants(self, store: TaskStore) -> None:
        """The last failure marks the task failed and every dependant, transitively, blocked."""
        root = await store.create_task({"title": "root", "max_retries": 0})
        child = await store.create_task({"title": "child", "dependencies": [root.id]})
        grandchild = await store.create_task({"title": "grandchild", "dependencies": [child.id]})
        await store.claim_task(root.id, "agent-1")
        failed = await store.fail_task(root.id, "agent-1", "fatal")
        assert failed.status is TaskStatus.FAILED
        for tid in (child.id, grandchild.id):
            dep = await store.get_task(tid)
            assert dep is not None and dep.status is TaskStatus.BLOCKED
            assert any(root.id in b for b in dep.blockers), "blocker must name the failed task"

    # -- claim TTL ---------------------------------------------------------

    async def test_expired_claim_is_taken_again_as_stalled(self, store: TaskStore) -> None:
        """A claim past its TTL may be taken by claim_next: retry_count + 1, failure stalled."""
        task = await store.create_task({"title": "t", "max_retries": 3})
        await store.claim_task(task.id, "agent-dead", ttl_ms=300)
        assert await store.claim_next("agent-2") is None
        await asyncio.sleep(0.45)
        taken = await store.claim_next("agent-2")
        assert taken is not None and taken.id == task.id and taken.assigned_agent == "agent-2"
        assert taken.retry_count == 1 and taken.failure_type is FailureType.STALLED

    async def test_renew_claim_keeps_it(self, store: TaskStore) -> None:
        """renew_claim extends the claim so nobody else takes a long-running task."""
        task = await store.create_task({"title": "long"})
        await store.claim_task(task.id, "agent-1", ttl_ms=300)
        for _ in range(3):
            await asyncio.sleep(0.15)
            await store.renew_claim(task.id, "agent-1", ttl_ms=300)
        assert await store.claim_next("agent-2") is None
        held = await store.get_task(task.id)
        assert held is not None and held.assigned_agent == "agent-1"

    async def test_renew_by_non_holder_is_a_conflict(self, store: TaskStore) -> None:
        """renew_claim by another agent raises ConflictError."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-1")
        with pytest.raises(ConflictError):
            await store.renew_claim(task.id, "agent-2")

    async def test_recover_expired_claims(self, store: TaskStore) -> None:
        """recover_expired_claims returns lapsed claims to the queue at once."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-dead", ttl_ms=100)
        await asyncio.sleep(0.2)
        recovered = await store.recover_expired_claims()
        assert [t.id for t in recovered] == [task.id]
        back = await store.get_task(task.id)
        assert back is not None and back.assigned_agent is None
        assert back.status in (TaskStatus.READY, TaskStatus.PENDING)

    # -- lapsed claims -----------------------------------------------------

    @pytest.mark.parametrize("action", ["renew", "start", "complete", "fail", "release"])
    async def test_a_lapsed_claim_is_lost_to_its_holder(
        self, store: TaskStore, action: str
    ) -> None:
        """Past claim_expires_at the claim is lost, even before any sweep ran.

        renew_claim, start_task, complete_task and fail_task raise ConflictError
        (release_task returns False), and the task is back in the queue as if
        the sweep had run: no holder, one retry used, failure ``stalled``. That
        is durable: a second attempt is refused too and the task can be claimed.
        """
        task = await store.create_task({"title": "t", "max_retries": 3})
        await store.claim_task(task.id, "agent-1", ttl_ms=100)
        await asyncio.sleep(0.25)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "renew": lambda: store.renew_claim(task.id, "agent-1", ttl_ms=60_000),
            "start": lambda: store.start_task(task.id, "agent-1"),
            "complete": lambda: store.complete_task(task.id, "agent-1"),
            "fail": lambda: store.fail_task(task.id, "agent-1", "boom"),
            "release": lambda: store.release_task(task.id, "agent-1"),
        }
        if action == "release":
            assert await calls[action]() is False
        else:
            with pytest.raises(ConflictError):
                await calls[action]()
        back = await store.get_task(task.id)
        assert back is not None and back.assigned_agent is None
        assert back.status is TaskStatus.READY and back.claim_expires_at is None
        assert back.retry_count == 1 and back.failure_type is FailureType.STALLED
        with pytest.raises(ConflictError):
            await store.complete_task(task.id, "agent-1")
        again = await store.claim_next("agent-2")
        assert again is not None and again.id == task.id

    # -- dependants of failed and blocked tasks ----------------------------

    async def _failed(self, store: TaskStore, title: str = "root") -> Task:
        return await self._fail(store, await store.create_task({"title": title, "max_retries": 0}))

    async def _failed_chain(self, store: TaskStore, *titles: str) -> list[Task]:
        """A chain of tasks, each depending on the one before; the first then fails for good."""
        chain = [await store.create_task({"title": titles[0], "max_retries": 0})]
        for title in titles[1:]:
            chain.append(await store.create_task({"title": title, "dependencies": [chain[-1].id]}))
        chain[0] = await self._fail(store, chain[0])
        return chain

    async def _fail(self, store: TaskStore, task: Task) -> Task:
        """Claim ``task`` (created with ``max_retries`` 0) and fail it for good."""
        assert await store.claim_task(task.id, "agent-1") is not None
        failed = await store.fail_task(task.id, "agent-1", "fatal")
        assert failed.status is TaskStatus.FAILED
        return failed

    async def test_a_new_dependant_of_a_failed_task_is_blocked(self, store: TaskStore) -> None:
        """create_task/create_tasks depending on a failed or blocked task: blocked, naming it."""
        root = await self._failed(store)
        child = await store.create_task({"title": "child", "dependencies": [root.id]})
        assert names(child, root.id)
        assert names(await store.get_task(child.id), root.id)
        grandchild, other = await store.create_tasks(
            [
                {"title": "grandchild", "dependencies": [child.id]},
                {"title": "other", "dependencies": [root.id]},
            ]
        )
        assert names(grandchild, child.id) and names(other, root.id)
        assert await store.get_ready_tasks() == []

    async def test_adding_a_failed_dependency_blocks_the_task_and_its_dependants(
        self, store: TaskStore
    ) -> None:
        """update_task adding a failed dependency blocks the task and everything below it."""
        root = await self._failed(store)
        task = await store.create_task({"title": "task"})
        below = await store.create_task({"title": "below", "dependencies": [task.id]})
        updated = await store.update_task(task.id, {"dependencies": [root.id]})
        assert names(updated, root.id)
        below_now = await store.get_task(below.id)
        assert below_now is not None and below_now.status is TaskStatus.BLOCKED
        late = await store.create_task({"title": "late"})
        await store.update_task(late.id, {"dependencies": [below.id]})
        assert names(await store.get_task(late.id), below.id)

    async def test_update_to_failed_blocks_dependants(self, store: TaskStore) -> None:
        """update_task(id, {"status": "failed"}) blocks the dependants, as fail_task does."""
        root = await store.create_task({"title": "root"})
        child = await store.create_task({"title": "child", "dependencies": [root.id]})
        grandchild = await store.create_task({"title": "gc", "dependencies": [child.id]})
        failed = await store.update_task(root.id, {"status": "failed"})
        assert failed.status is TaskStatus.FAILED
        assert names(await store.get_task(child.id), root.id)
        assert names(await store.get_task(grandchild.id), root.id)

    async def test_blocking_by_hand_blocks_dependants_until_unblocked(
        self, store: TaskStore
    ) -> None:
        """A task set blocked by update blocks its dependants; unblocking it releases them."""
        gate = await store.create_task({"title": "gate"})
        after = await store.create_task({"title": "after", "dependencies": [gate.id]})
        held = await store.update_task(
            gate.id, {"status": "blocked", "blockers": ["needs a decision"]}
        )
        assert held.status is TaskStatus.BLOCKED
        assert names(await store.get_task(after.id), gate.id)
        late = await store.create_task({"title": "late", "dependencies": [gate.id]})
        assert names(late, gate.id)
        freed = await store.update_task(gate.id, {"status": "pending", "blockers": []})
        assert freed.status is TaskStatus.READY
        for task_id in (after.id, late.id):
            back = await store.get_task(task_id)
            assert back is not None and back.status is TaskStatus.PENDING and back.blockers == []

    async def test_retrying_a_failed_task_releases_its_dependants(self, store: TaskStore) -> None:
        """Reopening a failed task (update to pending) unblocks what it blocked; they then run."""
        root = await self._failed(store)
        child = await store.create_task({"title": "child", "dependencies": [root.id]})
        grandchild = await store.create_task({"title": "gc", "dependencies": [child.id]})
        reopened = await store.update_task(root.id, {"status": "pending"})
        assert reopened.status is TaskStatus.READY
        for task_id in (child.id, grandchild.id):
            back = await store.get_task(task_id)
            assert back is not None and back.status is TaskStatus.PENDING and back.blockers == []
        assert await store.claim_task(root.id, "agent-1") is not None
        await store.complete_task(root.id, "agent-1")
        assert [t.id for t in await store.get_ready_tasks()] == [child.id]

    async def test_a_task_taken_from_below_a_failed_one_no_longer_waits_for_it(
        self, store: TaskStore
    ) -> None:
        """A blocked task whose dependencies no longer lead to the failed task stops naming it.

        Before, it (and what was blocked below it) kept naming the failed task, and
        reopening that task never reached them: blocked for good, for nothing.
        """
        root, middle, task, below = await self._failed_chain(
            store, "root", "middle", "task", "below"
        )
        other = await store.create_task({"title": "other"})
        assert names(await store.get_task(below.id), root.id)  # blocked naming the root cause
        moved = await store.update_task(task.id, {"dependencies": [other.id]})
        assert moved.status is TaskStatus.PENDING and moved.blockers == []
        back = await store.get_task(below.id)
        assert back is not None and back.status is TaskStatus.PENDING and back.blockers == []
        freed = await store.update_task(middle.id, {"dependencies": []})
        assert freed.status is TaskStatus.READY and freed.blockers == []
        await store.update_task(root.id, {"status": "pending"})  # reaches none of them now
        still = await store.get_task(task.id)
        assert still is not None and still.version == moved.version
        ready = {t.id for t in await store.get_ready_tasks()}
        assert ready == {root.id, middle.id, other.id}

    async def test_a_blocked_task_moved_below_another_failure_names_that_one(
        self, store: TaskStore
    ) -> None:
        """A blocked task moved from below one failed task to below another names the new one."""
        first, task, below = await self._failed_chain(store, "first", "task", "below")
        assert names(await store.get_task(below.id), first.id)
        second = await self._failed(store, "second")
        moved = await store.update_task(task.id, {"dependencies": [second.id]})
        assert moved.status is TaskStatus.BLOCKED and moved.blockers == [
            f"dependency {second.id} failed"
        ]
        assert names(await store.get_task(below.id), task.id)
        await store.update_task(second.id, {"status": "pending"})
        for task_id in (task.id, below.id):
            back = await store.get_task(task_id)
            assert back is not None and back.status is TaskStatus.PENDING and back.blockers == []

    async def test_update_cannot_make_a_held_task(self, store: TaskStore) -> None:
        """Status claimed/in_progress comes only from claims: update_task refuses it (status)."""
        task = await store.create_task({"title": "t"})
        for status in ("claimed", "in_progress"):
            with pytest.raises(ValidationError) as info:
                await store.update_task(task.id, {"status": status})
            assert info.value.field == "status"
        assert await store.get_task(task.id) == task

    async def test_update_out_of_a_claim_ends_it(self, store: TaskStore) -> None:
        """update_task moving a held task back to the queue ends the claim: no holder, no expiry."""
        task = await store.create_task({"title": "t"})
        await store.claim_task(task.id, "agent-1")
        back = await store.update_task(task.id, {"status": "pending"})
        assert back.status is TaskStatus.READY
        assert back.assigned_agent is None and back.claim_expires_at is None
        with pytest.raises(ConflictError):
            await store.complete_task(task.id, "agent-1")
        assert await store.get_tasks_by_agent("agent-1") == []
        done = await store.update_task(task.id, {"status": "completed"})
        assert done.completed_at is not None and done.claim_expires_at is None

    async def test_import_refuses_a_held_task_without_holder_or_expiry(
        self, store: TaskStore
    ) -> None:
        """import_tasks of a claimed/in_progress task needs its agent and expiry (else status)."""
        now = utcnow()
        base: dict[str, Any] = {"title": "t", "created_at": now, "updated_at": now}
        cases: list[tuple[str, dict[str, Any]]] = [
            ("claimed", {}),
            ("in_progress", {"assigned_agent": "agent-1"}),
            ("claimed", {"claim_expires_at": now + timedelta(minutes=5)}),
        ]
        for status, extra in cases:
            with pytest.raises(ValidationError) as info:
                await store.import_tasks([{**base, "id": "bd-held", "status": status, **extra}])
            assert info.value.field == "status"
        assert await store.list_tasks() == []
        expires = now + timedelta(minutes=5)
        held = {"status": "claimed", "assigned_agent": "agent-1", "claim_expires_at": expires}
        assert await store.import_tasks([{**base, "id": "bd-held", **held}]) == 1
        done = await store.complete_task("bd-held", "agent-1")
        assert done.status is TaskStatus.COMPLETED

    async def test_import_blocks_dependants_of_failed_tasks(self, store: TaskStore) -> None:
        """Imported edges to failed or blocked tasks block, in the batch and among stored tasks."""
        now = utcnow()

        def task(task_id: str, status: str = "pending", *deps: str) -> Task:
            return Task(
                id=task_id,
                title=task_id,
                status=TaskStatus(status),
                dependencies=list(deps),
                created_at=now,
                updated_at=now,
            )

        await store.import_tasks([task("bd-x"), task("bd-y", "pending", "bd-x")])
        assert await store.import_tasks(
            [task("bd-b", "pending", "bd-a"), task("bd-a", "failed"), task("bd-c", "ready", "bd-b")]
        )
        assert names(await store.get_task("bd-b"), "bd-a")
        c = await store.get_task("bd-c")
        assert c is not None and c.status is TaskStatus.BLOCKED
        await store.import_tasks([task("bd-x", "failed")], replace=True)
        assert names(await store.get_task("bd-y"), "bd-x")
        await store.import_tasks([task("bd-x", "completed")], replace=True)
        y = await store.get_task("bd-y")
        assert y is not None and y.status is TaskStatus.READY and y.blockers == []

    async def test_an_import_that_takes_a_task_from_below_a_failed_one_frees_it(
        self, store: TaskStore
    ) -> None:
        """import_tasks(replace=True) rewriting a blocked task's dependencies: as update_task."""
        root, task, below = await self._failed_chain(store, "root", "task", "below")
        blocked = await store.get_task(task.id)
        assert blocked is not None and names(blocked, root.id)
        await store.import_tasks([blocked.model_copy(update={"dependencies": []})], replace=True)
        freed = await store.get_task(task.id)
        assert freed is not None and freed.status is TaskStatus.READY and freed.blockers == []
        assert freed.version == blocked.version, "an imported task keeps its version"
        back = await store.get_task(below.id)
        assert back is not None and back.status is TaskStatus.PENDING and back.blockers == []

    # -- stored status agrees with the ready rule ----------------------------

    async def test_stored_status_agrees_with_readiness(self, store: TaskStore) -> None:
        """Status ``ready`` is stored exactly for tasks ready to claim, back-off aside.

        A task is created ``ready`` when nothing keeps it waiting, else ``pending``;
        it is promoted when its last dependency completes and demoted when a new
        open dependency is added; list_tasks(status=ready) and get_ready_tasks
        agree. A task in retry back-off is stored ``ready`` but not yet returned
        by get_ready_tasks.
        """

        async def listed() -> set[str]:
            return {t.id for t in await store.list_tasks({"status": "ready"})}

        async def ready() -> set[str]:
            return {t.id for t in await store.get_ready_tasks()}

        a = await store.create_task({"title": "a"})
        b = await store.create_task({"title": "b"})
        c = await store.create_task({"title": "c", "dependencies": [a.id, b.id]})
        d = await store.create_task({"title": "d", "dependencies": [c.id]})
        e = await store.create_task({"title": "e", "blockers": ["needs a decision"]})
        assert c.status is TaskStatus.PENDING and e.status is TaskStatus.PENDING
        assert await listed() == await ready() == {a.id, b.id}
        for task in (a, b):
            await store.claim_task(task.id, "agent-1")
            await store.complete_task(task.id, "agent-1")
        assert await listed() == await ready() == {c.id}
        blocker = await store.create_task({"title": "blocker"})
        demoted = await store.update_task(c.id, {"dependencies": [a.id, blocker.id]})
        assert demoted.status is TaskStatus.PENDING
        assert await listed() == await ready() == {blocker.id}
        await store.update_task(e.id, {"blockers": []})
        assert await listed() == await ready() == {blocker.id, e.id}
        flaky = await store.create_task({"title": "flaky", "max_retries": 2})
        await store.claim_task(flaky.id, "agent-1")
        await store.fail_task(flaky.id, "agent-1", "boom")
        assert flaky.id in await listed() and flaky.id not in await ready(), "back-off"
        stored = await store.get_task(d.id)
        assert stored is not None and stored.status is TaskStatus.PENDING

    # -- hostile input -------------------------------------------------------

    async def test_deep_nesting_and_lone_surrogates_are_refused(self, store: TaskStore) -> None:
        """Nesting past MAX_JSON_DEPTH and lone surrogates: ValidationError, nothing written."""
        task = await store.create_task({"title": "keep", "metadata": nested(MAX_JSON_DEPTH)})
        await store.claim_task(task.id, "agent-1")
        before = await store.get_task(task.id)
        creates: list[tuple[str, dict[str, Any]]] = [
            ("metadata", {"title": "t", "metadata": nested(MAX_JSON_DEPTH + 1)}),
            ("metadata", {"title": "t", "metadata": nested(5_000)}),
            ("metadata", {"title": "t", "metadata": {"\ud800": 1}}),
            ("metadata", {"title": "t", "metadata": {"k": ["ok", "\udfff"]}}),
            ("title", {"title": "bad \ud800"}),
            ("description", {"title": "t", "description": "\ud800"}),
            ("tags", {"title": "t", "tags": ["\ud800"]}),
        ]
        for field, data in creates:
            with pytest.raises(ValidationError) as info:
                await store.create_task(data)
            assert info.value.field.split(".")[0] == field, data
        updates: list[tuple[str, dict[str, Any]]] = [
            ("metadata", {"metadata": nested(5_000)}),
            ("metadata", {"metadata": {"\ud800": "x"}}),
            ("title", {"title": "\udc00"}),
        ]
        for field, data in updates:
            with pytest.raises(ValidationError) as info:
                await store.update_task(task.id, data)
            assert info.value.field.split(".")[0] == field, data
        with pytest.raises(ValidationError) as info:
            await store.fail_task(task.id, "agent-1", "bad \ud800")
        assert info.value.field == "error"
        with pytest.raises(ValidationError) as info:
            await store.complete_task(task.id, "agent-1", result=nested(5_000))
        assert info.value.field == "result"
        with pytest.raises(ValidationError) as info:
            await store.complete_task(task.id, "agent-1", result={"\ud800": 1})
        assert info.value.field == "result"
        now = utcnow()
        with pytest.raises(ValidationError) as info:
            await store.import_tasks(
                [
                    {
                        "id": "bd-deep",
                        "title": "t",
                        "created_at": now,
                        "updated_at": now,
                        "metadata": nested(5_000),
                    }
                ]
            )
        assert info.value.field.split(".")[0] == "metadata"
        assert [t.id for t in await store.list_tasks()] == [task.id]
        assert await store.get_task(task.id) == before

    @pytest.mark.parametrize("ttl_ms", [MAX_TTL_MS + 1, 2**62])
    async def test_ttl_over_a_year_is_refused(self, store: TaskStore, ttl_ms: int) -> None:
        """claim_task, claim_next and renew_claim refuse TTLs over a year, naming ttl_ms."""
        task = await store.create_task({"title": "t"})
        other = await store.create_task({"title": "other"})
        with pytest.raises(ValidationError) as info:
            await store.claim_task(task.id, "agent-1", ttl_ms=ttl_ms)
        assert info.value.field == "ttl_ms"
        with pytest.raises(ValidationError) as info:
            await store.claim_next("agent-1", ttl_ms=ttl_ms)
        assert info.value.field == "ttl_ms"
        assert {t.id for t in await store.get_ready_tasks()} == {task.id, other.id}
        claimed = await store.claim_task(task.id, "agent-1", ttl_ms=MAX_TTL_MS)
        assert claimed is not None
        with pytest.raises(ValidationError) as info:
            await store.renew_claim(task.id, "agent-1", ttl_ms=ttl_ms)
        assert info.value.field == "ttl_ms"
        assert await store.get_task(task.id) == claimed

    # -- queries -----------------------------------------------------------

    async def test_list_filters_limit_offset(self, store: TaskStore) -> None:
        """list_tasks filters by status/priority/agent/tag and pages in creation order."""
        made = []
        for i in range(6):
            made.append(
                await store.create_task(
                    {
                        "title": f"t{i}",
                        "priority": "high" if i % 2 else "low",
                        "tags": [f"g{i % 3}"],
                    }
                )
            )
        await store.claim_task(made[0].id, "agent-1")
        all_ids = [t.id for t in await store.list_tasks()]
        assert all_ids == [t.id for t in made]
        assert [t.id for t in await store.list_tasks({"limit": 2, "offset": 2})] == all_ids[2:4]
        high = await store.list_tasks({"priority": "high"})
        assert {t.id for t in high} == {made[1].id, made[3].id, made[5].id}
        assert [t.id for t in await store.list_tasks({"assigned_agent": "agent-1"})] == [made[0].id]
        assert [t.id for t in await store.list_tasks({"tag": "g1"})] == [made[1].id, made[4].id]
        claimed = await store.get_tasks_by_status(TaskStatus.CLAIMED)
        assert [t.id for t in claimed] == [made[0].id]
        assert [t.id for t in await store.get_tasks_by_agent("agent-1")] == [made[0].id]

    async def test_stats(self, store: TaskStore) -> None:
        """get_stats counts every status and priority, and the ready tasks."""
        a = await store.create_task({"title": "a", "priority": "critical"})
        await store.create_task({"title": "b", "dependencies": [a.id]})
        await store.claim_task(a.id, "agent-1")
        await store.complete_task(a.id, "agent-1", actual_minutes=4)
        stats = await store.get_stats()
        assert stats.total == 2
        assert stats.by_status[TaskStatus.COMPLETED] == 1
        assert stats.by_priority[TaskPriority.CRITICAL] == 1
        assert stats.ready == 1
        assert stats.avg_completion_minutes == 4

    async def test_models_round_trip_json(self, store: TaskStore) -> None:
        """Stored tasks survive a JSON round trip exactly."""
        task = await store.create_task({"title": "json", "metadata": {"a": [1, 2, {"b": None}]}})
        assert Task.model_validate_json(task.model_dump_json()) == task
