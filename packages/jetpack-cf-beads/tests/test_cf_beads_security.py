"""Security of the task routes on a real Worker; each test also checks nothing was written
and that the audit log shows the attempt."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from jetpack.cf_beads import CloudflareTaskStore
from jetpack.shared import Task
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker

MIB = 1024 * 1024


def http(worker: EdgeWorker, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=worker.url, headers=headers, timeout=60)


def audit_entries(worker: EdgeWorker, since_ms: int) -> list[dict[str, Any]]:
    """Every audit entry from ``since_ms`` on (the admin sees all), page by page."""
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        query = f"?limit=1000&since={since_ms}&after={after}"
        status, answer = worker.call("GET", f"/api/audit{query}")
        assert status == 200
        page: list[dict[str, Any]] = answer["entries"]
        entries.extend(page)
        if len(page) < 1000:
            return entries
        after = page[-1]["seq"]


def wait_for_audit(worker: EdgeWorker, request_ids: set[str], status: int) -> list[dict[str, Any]]:
    """The audit entries of ``request_ids`` (each with ``status``), once all are written."""
    since_ms = int(time.time() * 1000) - 120_000  # the requests were just sent
    deadline = time.monotonic() + 10
    while True:
        found = [
            e
            for e in audit_entries(worker, since_ms)
            if e["request_id"] in request_ids and e["status"] == status
        ]
        if {e["request_id"] for e in found} == request_ids:
            return found
        assert time.monotonic() < deadline, (
            f"not audited: {request_ids - {e['request_id'] for e in found}}"
        )
        time.sleep(0.05)


def snapshot(worker: EdgeWorker, token: str) -> list[dict[str, Any]]:
    with http(worker, token) as client:
        answer = client.get("/api/tasks")
    assert answer.status_code == 200
    tasks: list[dict[str, Any]] = answer.json()["tasks"]
    return tasks


@pytest.fixture
def seeded(edge_worker: EdgeWorker, edge_project: EdgeProject) -> EdgeProject:
    with http(edge_worker, edge_project.token) as client:
        for body in ({"id": "a-1", "title": "one"}, {"id": "a-2", "title": "two"}):
            assert client.post("/api/tasks", json=body).status_code == 201
        claimed = client.post("/api/tasks/a-2/claim", json={"agent_id": "owner", "ttl_ms": 600_000})
        assert claimed.status_code == 200
    return edge_project


@pytest.mark.parametrize("token", [None, "jp_wrong", "revoked"])
def test_no_wrong_or_revoked_token_is_401_and_writes_nothing(
    edge_worker: EdgeWorker, seeded: EdgeProject, token: str | None
) -> None:
    if token == "revoked":
        spare = edge_worker.new_project(seeded.project)
        assert edge_worker.call("DELETE", f"/api/admin/tokens/{spare.token_id}")[0] == 200
        token = spare.token
    before = snapshot(edge_worker, seeded.token)
    ids = set()
    with http(edge_worker, token) as client:
        for i, (method, path, body) in enumerate(
            [
                ("POST", "/api/tasks", {"title": "intruder"}),
                ("GET", "/api/tasks", None),
                ("PATCH", "/api/tasks/a-1", {"title": "defaced"}),
                ("DELETE", "/api/tasks/a-1", None),
                ("POST", "/api/tasks/a-1/claim", {"agent_id": "x"}),
            ]
        ):
            rid = f"unauth-{token and token[:6]}-{i}-{time.monotonic_ns()}"
            ids.add(rid)
            answer = client.request(method, path, json=body, headers={"X-Request-Id": rid})
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["code"] == "unauthorized"
    assert snapshot(edge_worker, seeded.token) == before
    wait_for_audit(edge_worker, ids, 401)


def test_another_projects_ids_answer_404_never_403(
    edge_worker: EdgeWorker, seeded: EdgeProject
) -> None:
    intruder = edge_worker.new_project()
    before = snapshot(edge_worker, seeded.token)
    attempts = [
        ("GET", "/api/tasks/a-1", None),
        ("PATCH", "/api/tasks/a-1", {"title": "defaced"}),
        ("DELETE", "/api/tasks/a-1", None),
        ("POST", "/api/tasks/a-1/claim", {"agent_id": "thief"}),
        ("POST", "/api/tasks/a-2/complete", {"agent_id": "owner"}),
        ("POST", "/api/tasks/a-2/fail", {"agent_id": "owner", "error": "x"}),
        ("POST", "/api/tasks/a-2/renew", {"agent_id": "owner"}),
    ]
    ids = set()
    with http(edge_worker, intruder.token) as client:
        for i, (method, path, body) in enumerate(attempts):
            rid = f"cross-{i}-{time.monotonic_ns()}"
            ids.add(rid)
            answer = client.request(method, path, json=body, headers={"X-Request-Id": rid})
            assert answer.status_code == 404, (method, path, answer.text)
        assert client.get("/api/tasks").json() == {"tasks": []}
        assert client.post("/api/tasks/claim-next", json={"agent_id": "thief"}).json() == {
            "task": None
        }
        release = client.post("/api/tasks/a-2/release", json={"agent_id": "owner"})
        assert release.json() == {"released": False}
    assert snapshot(edge_worker, seeded.token) == before
    entries = [e for e in wait_for_audit(edge_worker, ids, 404)]
    assert {e["project"] for e in entries} == {intruder.project}
    assert {e["token_id"] for e in entries} == {intruder.token_id}


def test_an_id_taken_only_in_another_project_can_be_created(
    edge_worker: EdgeWorker, seeded: EdgeProject
) -> None:
    other = edge_worker.new_project()
    with http(edge_worker, other.token) as client:
        answer = client.post("/api/tasks", json={"id": "a-1", "title": "mine"})
        assert answer.status_code == 201, answer.text
    theirs = {t["id"]: t["title"] for t in snapshot(edge_worker, seeded.token)}
    assert theirs["a-1"] == "one"


def test_agent_bound_tokens_act_only_as_their_agent(
    edge_worker: EdgeWorker, seeded: EdgeProject
) -> None:
    with http(edge_worker, seeded.token) as client:
        minted = client.post("/api/tokens", json={"agent_id": "worker-1"}).json()
    before = snapshot(edge_worker, seeded.token)
    ids = set()
    with http(edge_worker, minted["token"]) as client:
        for i, (path, body) in enumerate(
            [
                ("/api/tasks/a-1/claim", {"agent_id": "worker-2"}),
                ("/api/tasks/claim-next", {"agent_id": "worker-2"}),
                ("/api/tasks/a-2/complete", {"agent_id": "owner"}),
                ("/api/tasks/a-2/fail", {"agent_id": "owner", "error": "sabotage"}),
                ("/api/tasks/a-2/release", {"agent_id": "owner"}),
                ("/api/tasks/a-2/renew", {"agent_id": "owner"}),
                ("/api/tasks/a-2/start", {"agent_id": "owner"}),
            ]
        ):
            rid = f"impersonate-{i}-{time.monotonic_ns()}"
            ids.add(rid)
            answer = client.post(path, json=body, headers={"X-Request-Id": rid})
            assert answer.status_code == 403, (path, answer.text)
            assert "worker-1" in answer.json()["error"]["message"]
        assert snapshot(edge_worker, seeded.token) == before
        mine = client.post("/api/tasks/a-1/claim", json={"agent_id": "worker-1"})
        assert mine.status_code == 200 and mine.json()["assigned_agent"] == "worker-1"
    wait_for_audit(edge_worker, ids, 403)


def test_two_mib_body_is_413_and_nothing_is_stored(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    body = json.dumps({"title": "big", "description": "x" * (2 * MIB)})
    with http(edge_worker, edge_project.token) as client:
        answer = client.post(
            "/api/tasks",
            content=body,
            headers={"Content-Type": "application/json", "X-Request-Id": "task-413"},
        )
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "too_large",
        "message": answer.json()["error"]["message"],
        "field": "body",
    }
    assert snapshot(edge_worker, edge_project.token) == []
    wait_for_audit(edge_worker, {"task-413"}, 413)


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b'{"title": "unterminated', 400, "body"),
        (b'["not", "an", "object"]', 422, "body"),
        (b'{"title": "ok", "owner": "me"}', 422, "owner"),
        (b'{"title": "ok", "priority": "urgent"}', 422, "priority"),
        (b'{"title": "ok", "metadata": {"k": "\\ud800"}}', 422, "metadata.k"),
        (b'{"title": "\\udfff"}', 422, "title"),
    ],
)
def test_malformed_and_unknown_input_is_refused_naming_the_field(
    edge_worker: EdgeWorker, edge_project: EdgeProject, content: bytes, status: int, field: str
) -> None:
    rid = f"bad-input-{time.monotonic_ns()}"
    with http(edge_worker, edge_project.token) as client:
        answer = client.post(
            "/api/tasks",
            content=content,
            headers={"Content-Type": "application/json", "X-Request-Id": rid},
        )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["field"] == field
    assert snapshot(edge_worker, edge_project.token) == []
    wait_for_audit(edge_worker, {rid}, status)


SQLISH = [
    "'; DROP TABLE tasks; --",
    '" OR 1=1 --',
    "x'); DELETE FROM task_deps; --",
    "Robert'); UPDATE tasks SET status='completed' WHERE ('1'='1",
    "%_\\' /* */ ?1 ?2 :id $1",
]


async def test_sql_looking_strings_are_stored_verbatim(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    async with CloudflareTaskStore(edge_project.url, edge_project.token) as store:
        victim = await store.create_task(
            {"id": "victim", "title": "stays pending", "required_skills": ["nobody"]}
        )
        made: list[Task] = []
        for i, text in enumerate(SQLISH):
            made.append(
                await store.create_task(
                    {
                        "id": f"t-{i}",
                        "title": text,
                        "description": text,
                        "blockers": [],
                        "required_skills": [text],
                        "tags": [text],
                        "branch": text,
                        "origin_branch": text,
                        "target_branches": [text],
                        "metadata": {text: text, "nested": [text]},
                    }
                )
            )
        for i, text in enumerate(SQLISH):
            got = await store.get_task(f"t-{i}")
            assert got is not None and got == made[i]
            assert got.title == text and got.tags == [text] and got.metadata[text] == text
            assert [t.id for t in await store.list_tasks({"tag": text})] == [f"t-{i}"]
        claimed = await store.claim_next("agent-1", skills=[SQLISH[0]])
        assert claimed is not None and claimed.id == "t-0"
        failed = await store.fail_task("t-0", "agent-1", SQLISH[1])
        assert failed.last_error == SQLISH[1]
        assert await store.get_task("victim") == victim
        assert len(await store.list_tasks()) == len(SQLISH) + 1


async def test_claim_times_come_from_the_worker_clock(edge_project: EdgeProject) -> None:
    async with CloudflareTaskStore(edge_project.url, edge_project.token) as store:
        task = await store.create_task({"title": "t"})
        claimed = await store.claim_task(task.id, "agent-1", ttl_ms=90_000)
    assert claimed is not None and claimed.claim_expires_at and claimed.last_attempt_at
    assert (claimed.claim_expires_at - claimed.last_attempt_at).total_seconds() == 90
    assert abs((claimed.last_attempt_at - claimed.created_at).total_seconds()) < 30
