"""The gateway on a real Worker (workerd): auth, tokens, limits, errors, audit, CORS, uploads.

These need no cf package: the gateway alone is a Worker (health, tokens, audit,
uploads). Task-level security (project isolation, agent-bound tokens on
claims) is tested with the task routes in jetpack-cf-beads.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from jetpack.shared.edge import API_VERSION
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

MIB = 1024 * 1024


def client(worker: EdgeWorker, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=worker.url, headers=headers, timeout=60)


def audit(worker: EdgeWorker, **params: Any) -> list[dict[str, Any]]:
    """Audit entries of the last two minutes (the admin sees all), page by page.

    The session's Worker serves every edge test, so the log holds far more
    than one page; the entries a test looks for were just written.
    """
    params.setdefault("since", int(time.time() * 1000) - 120_000)
    entries: list[dict[str, Any]] = []
    after = int(params.pop("after", 0))
    with client(worker, worker.admin_token) as http:
        while True:
            answer = http.get("/api/audit", params={"limit": 1000, "after": after, **params})
            assert answer.status_code == 200, answer.text
            page: list[dict[str, Any]] = answer.json()["entries"]
            entries.extend(page)
            if len(page) < 1000:
                return entries
            after = page[-1]["seq"]


def audited(worker: EdgeWorker, request_id: str, status: int) -> bool:
    return any(e["request_id"] == request_id and e["status"] == status for e in audit(worker))


def tokens_of(worker: EdgeWorker, project: str) -> list[dict[str, Any]]:
    with client(worker, worker.admin_token) as http:
        answer = http.get("/api/admin/tokens", params={"project": project})
    assert answer.status_code == 200
    result: list[dict[str, Any]] = answer.json()["tokens"]
    return result


def assert_error(answer: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field
    assert answer.headers["X-Request-Id"]


def test_health_is_public_and_reports_the_api_version(edge_worker: EdgeWorker) -> None:
    with client(edge_worker) as http:
        answer = http.get("/api/health")
    assert answer.status_code == 200
    assert answer.json()["api_version"] == API_VERSION
    assert answer.json()["status"] == "ok"
    assert answer.headers["X-Request-Id"]


def test_openapi_document_is_public_and_lists_the_token_routes(edge_worker: EdgeWorker) -> None:
    with client(edge_worker) as http:
        doc = http.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/admin/tokens" in doc["paths"] and "/api/tokens" in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_request_id_is_echoed_or_made(edge_worker: EdgeWorker) -> None:
    with client(edge_worker) as http:
        mine = http.get("/api/health", headers={"X-Request-Id": "req-123.abc"})
        hostile = http.get("/api/health", headers={"X-Request-Id": "bad id\twith spaces"})
    assert mine.headers["X-Request-Id"] == "req-123.abc"
    assert hostile.headers["X-Request-Id"] != "bad id\twith spaces"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer jp_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer a b"],
)
def test_requests_without_a_valid_token_get_401_and_are_audited(
    edge_worker: EdgeWorker, authorization: str | None
) -> None:
    headers = {"X-Request-Id": f"unauth-{time.monotonic_ns()}"}
    if authorization is not None:
        headers["Authorization"] = authorization
    with client(edge_worker) as http:
        answer = http.get("/api/tokens", headers=headers)
    assert_error(answer, 401, "unauthorized")
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert eventually_true(lambda: audited(edge_worker, headers["X-Request-Id"], 401))
    entry = next(e for e in audit(edge_worker) if e["request_id"] == headers["X-Request-Id"])
    assert entry["token_id"] is None and entry["project"] is None


def eventually_true(check: Any, timeout: float = 10.0) -> bool:
    """Audit rows are written just after the response."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_admin_mints_lists_and_revokes_tokens(edge_worker: EdgeWorker) -> None:
    project = edge_worker.new_project()
    with client(edge_worker, project.token) as http:
        assert http.get("/api/tokens").status_code == 200
    listed = tokens_of(edge_worker, project.project)
    assert [t["id"] for t in listed] == [project.token_id]
    text = json.dumps(listed)
    assert project.token not in text and "hash" not in text, "a listing must never show tokens"
    with client(edge_worker, edge_worker.admin_token) as http:
        assert http.delete(f"/api/admin/tokens/{project.token_id}").json() == {"revoked": True}
        assert_error(http.delete(f"/api/admin/tokens/{project.token_id}"), 404, "not_found")
    with client(edge_worker, project.token) as http:
        assert_error(http.get("/api/tokens"), 401, "unauthorized")


def test_tokens_are_random_and_stored_hashed(edge_worker: EdgeWorker) -> None:
    a = edge_worker.new_project("same-project")
    b = edge_worker.new_project("same-project")
    assert a.token != b.token and a.token_id != b.token_id
    assert len(a.token) >= 40  # jp_ + 256 bits in base64url


def test_project_token_cannot_use_admin_routes_nor_admin_project_routes(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    with client(edge_worker, edge_project.token) as http:
        assert_error(http.post("/api/admin/tokens", json={"project": "x"}), 403, "forbidden")
        assert_error(http.get("/api/admin/tokens"), 403, "forbidden")
    with client(edge_worker, edge_worker.admin_token) as http:
        assert_error(http.get("/api/tokens"), 403, "forbidden")
    assert tokens_of(edge_worker, "x") == []


def test_agent_tokens_are_minted_by_project_tokens_only_and_expire(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    with client(edge_worker, edge_project.token) as http:
        minted = http.post("/api/tokens", json={"agent_id": "agent-7", "ttl_ms": 1500})
    assert minted.status_code == 201, minted.text
    agent = minted.json()
    assert agent["project"] == edge_project.project and agent["agent_id"] == "agent-7"
    assert agent["expires_at"] is not None
    with client(edge_worker, agent["token"]) as http:
        assert http.get("/api/tokens").status_code == 200
        refused = http.post("/api/tokens", json={"agent_id": "agent-8"})
        assert_error(refused, 403, "forbidden")
        assert_error(http.delete(f"/api/tokens/{edge_project.token_id}"), 403, "forbidden")
    assert {t["agent_id"] for t in tokens_of(edge_worker, edge_project.project)} == {
        None,
        "agent-7",
    }
    time.sleep(1.6)
    with client(edge_worker, agent["token"]) as http:
        assert_error(http.get("/api/tokens"), 401, "unauthorized")
    with client(edge_worker, edge_project.token) as http:
        too_long = http.post("/api/tokens", json={"agent_id": "a", "ttl_ms": 31 * 86_400_000})
    assert_error(too_long, 422, "invalid", "ttl_ms")


def test_whoami_names_the_calling_token_never_showing_it(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    with client(edge_worker, edge_project.token) as http:
        me = http.get("/api/whoami")
        agent = http.post("/api/tokens", json={"agent_id": "agent-3"}).json()
    assert me.status_code == 200, me.text
    assert me.json() == {
        "project": edge_project.project,
        "token_id": edge_project.token_id,
        "agent_id": None,
    }
    with client(edge_worker, agent["token"]) as http:
        bound = http.get("/api/whoami").json()
    assert bound == {
        "project": edge_project.project,
        "token_id": agent["id"],
        "agent_id": "agent-3",
    }
    assert edge_project.token not in me.text
    with client(edge_worker, "jp_unknown") as http:
        assert_error(http.get("/api/whoami"), 401, "unauthorized")
    with client(edge_worker, edge_worker.admin_token) as http:
        assert_error(http.get("/api/whoami"), 403, "forbidden")


def test_project_token_revokes_its_agent_tokens_but_not_others(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    other = edge_worker.new_project()
    with client(edge_worker, other.token) as http:
        foreign = http.post("/api/tokens", json={"agent_id": "b-1"}).json()
    with client(edge_worker, edge_project.token) as http:
        mine = http.post("/api/tokens", json={"agent_id": "a-1"}).json()
        assert_error(http.delete(f"/api/tokens/{foreign['id']}"), 404, "not_found")
        assert_error(http.delete(f"/api/tokens/{edge_project.token_id}"), 404, "not_found")
        assert http.delete(f"/api/tokens/{mine['id']}").json() == {"revoked": True}
    with client(edge_worker, foreign["token"]) as http:
        assert http.get("/api/tokens").status_code == 200
    with client(edge_worker, mine["token"]) as http:
        assert_error(http.get("/api/tokens"), 401, "unauthorized")


def test_body_over_one_mib_is_413_and_nothing_is_written(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    body = json.dumps({"agent_id": "a", "pad": "x" * (2 * MIB)})
    with client(edge_worker, edge_project.token) as http:
        answer = http.post(
            "/api/tokens",
            content=body,
            headers={"Content-Type": "application/json", "X-Request-Id": "big-body-1"},
        )
    assert_error(answer, 413, "too_large", "body")
    assert len(tokens_of(edge_worker, edge_project.project)) == 1
    assert eventually_true(lambda: audited(edge_worker, "big-body-1", 413))


def test_malformed_json_and_unknown_fields_name_the_problem(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    with client(edge_worker, edge_project.token) as http:
        bad = http.post(
            "/api/tokens", content=b'{"agent_id": ', headers={"Content-Type": "application/json"}
        )
        unknown = http.post("/api/tokens", json={"agent_id": "a", "is_admin": True})
        wrong = http.post("/api/tokens", json={"agent_id": "has spaces"})
    assert_error(bad, 400, "bad_json", "body")
    assert_error(unknown, 422, "invalid", "is_admin")
    assert_error(wrong, 422, "invalid", "agent_id")
    assert len(tokens_of(edge_worker, edge_project.project)) == 1


def test_cors_is_off_unless_configured(edge_worker: EdgeWorker, edge_project: EdgeProject) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
        "X-Request-Id": "cors-preflight-1",
    }
    with client(edge_worker) as http:
        answer = http.options("/api/tokens", headers=preflight)
        simple = http.get(
            "/api/tokens",
            headers={
                "Origin": "https://evil.example",
                "Authorization": f"Bearer {edge_project.token}",
            },
        )
    assert_error(answer, 403, "cors_forbidden")
    for response in (answer, simple):
        assert "Access-Control-Allow-Origin" not in response.headers
    assert eventually_true(lambda: audited(edge_worker, "cors-preflight-1", 403))


def test_audit_log_records_mutations_and_refusals_per_project(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    with client(edge_worker, edge_project.token) as http:
        http.post("/api/tokens", json={"agent_id": "w-1"}, headers={"X-Request-Id": "mut-1"})
        http.post("/api/tokens", json={"agent_id": ""}, headers={"X-Request-Id": "ref-1"})
        http.get("/api/tokens", headers={"X-Request-Id": "read-1"})

        def mine() -> list[dict[str, Any]]:
            entries: list[dict[str, Any]] = http.get("/api/audit").json()["entries"]
            return entries

        assert eventually_true(lambda: {"mut-1", "ref-1"} <= {e["request_id"] for e in mine()})
        entries = mine()
    assert {e["project"] for e in entries} == {edge_project.project}
    by_id = {e["request_id"]: e for e in entries}
    assert by_id["mut-1"]["status"] == 201 and by_id["mut-1"]["token_id"] == edge_project.token_id
    assert by_id["mut-1"]["agent_id"] == "w-1" and by_id["mut-1"]["route"] == "/api/tokens"
    assert by_id["ref-1"]["status"] == 422 and by_id["ref-1"]["code"] == "invalid"
    assert "read-1" not in by_id, "successful reads are not audited"
    assert edge_project.token not in json.dumps(entries)
    since = entries[-1]["at"]
    with client(edge_worker, edge_project.token) as http:
        later = http.get("/api/audit", params={"since": since}).json()["entries"]
    assert later and all(e["at"] >= since for e in later)


def test_idempotency_key_replays_the_first_answer_and_writes_once(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    headers = {"Idempotency-Key": f"key-{time.monotonic_ns()}"}
    with client(edge_worker, edge_project.token) as http:
        first = http.post("/api/tokens", json={"agent_id": "idem"}, headers=headers)
        # The first answer is kept just after it is sent; until then a retry is told to wait.
        while True:
            second = http.post("/api/tokens", json={"agent_id": "idem"}, headers=headers)
            if second.status_code != 409:
                break
            assert second.json()["error"]["code"] == "in_progress"
            time.sleep(0.05)
        elsewhere = http.post("/api/admin/tokens", json={"project": "p"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(tokens_of(edge_worker, edge_project.project)) == 2
    assert_error(elsewhere, 422, "invalid", "Idempotency-Key")  # one key, one request


def test_uploads_reassemble_a_body_sent_in_parts(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    body = json.dumps({"agent_id": "uploaded", "ttl_ms": 60_000}).encode()
    with client(edge_worker, edge_project.token) as http:
        for index, start in enumerate(range(0, len(body), 10)):
            put = http.put(f"/api/uploads/abcdef123456/{index}", content=body[start : start + 10])
            assert put.status_code == 200, put.text
        parts = (len(body) + 9) // 10
        answer = http.post(
            "/api/tokens", headers={"Jetpack-Upload": f"abcdef123456; parts={parts}"}
        )
        short = http.post("/api/tokens", headers={"Jetpack-Upload": "zzzzzzzzzz; parts=2"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["agent_id"] == "uploaded"
    assert_error(short, 422, "invalid", "Jetpack-Upload")


def test_unknown_route_is_a_json_404(edge_worker: EdgeWorker, edge_project: EdgeProject) -> None:
    with client(edge_worker, edge_project.token) as http:
        assert_error(http.get("/api/nothing-here"), 404, "not_found")
