"""Security of the memory routes on a real Worker: tokens, hostile text stored and found
verbatim, any query searched as text, oversize and malformed bodies; each refusal writes
nothing and is in the audit log."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from jetpack.cf_cass import CloudflareMemoryStore
from jetpack.shared.errors import ValidationError
from jetpack.shared.testing import KitEmbedder
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker

MIB = 1024 * 1024

HOSTILE = [
    "'; DROP TABLE memories; --",
    'fix AND "x" -y a:b NEAR(',
    "NEAR(lease renewal, 2) OR * ^ col:value",
    "1; DELETE FROM memories_fts WHERE 1=1; SELECT '",
    "<script>alert('x')</script> \\u0000 %s %n {}",
    "emoji 🚀 and 日本語 and ΟΔΟΣ and e\u0301te\u0301",
    "tab\tnew\nline\r\x1c\x85\u2028",
]


def http(worker: EdgeWorker, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=worker.url, headers=headers, timeout=60)


def audit_log(worker: EdgeWorker, since_ms: int) -> list[dict[str, Any]]:
    """Every audit entry from ``since_ms`` on (the admin sees all), page by page."""
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        status, answer = worker.call("GET", f"/api/audit?limit=1000&since={since_ms}&after={after}")
        assert status == 200
        page: list[dict[str, Any]] = answer["entries"]
        entries.extend(page)
        if len(page) < 1000:
            return entries
        after = page[-1]["seq"]


def audited(worker: EdgeWorker, request_ids: set[str], status: int) -> set[str]:
    """Wait until every request is in the audit log with ``status``; all ids logged lately."""
    since_ms = int(time.time() * 1000) - 120_000  # the requests were just sent
    deadline = time.monotonic() + 10
    while True:
        entries = audit_log(worker, since_ms)
        seen = {e["request_id"] for e in entries if e["status"] == status}
        if request_ids <= seen:
            return {e["request_id"] for e in entries}
        assert time.monotonic() < deadline, f"not audited: {request_ids - seen}"
        time.sleep(0.05)


def count(worker: EdgeWorker, token: str) -> int:
    with http(worker, token) as client:
        answer = client.get("/api/memory/_stats")
    assert answer.status_code == 200
    total: int = answer.json()["total"]
    return total


@pytest.mark.parametrize("token", [None, "jp_wrong"])
def test_no_or_wrong_token_is_401_and_writes_nothing(
    edge_worker: EdgeWorker, edge_project: EdgeProject, token: str | None
) -> None:
    ids = set()
    with http(edge_worker, token) as client:
        for i, (method, path, body) in enumerate(
            [
                ("POST", "/api/memory", {"type": "agent_learning", "content": "intruder"}),
                ("POST", "/api/memory/batch", {"memories": []}),
                ("POST", "/api/memory/search", {"query": "x"}),
                ("GET", "/api/memory/_stats", None),
                ("POST", "/api/memory/compact", {"threshold": 1.0}),
            ]
        ):
            request_id = f"mem-401-{token}-{i}"
            answer = client.request(method, path, json=body, headers={"X-Request-Id": request_id})
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"
            ids.add(request_id)
    assert count(edge_worker, edge_project.token) == 0
    audited(edge_worker, ids, 401)


async def test_hostile_contents_are_stored_and_found_verbatim(edge_project: EdgeProject) -> None:
    async with CloudflareMemoryStore(
        edge_project.url, edge_project.token, embedder=KitEmbedder()
    ) as store:
        ids = await store.store_many(
            [
                {
                    "id": f"h-{i}",
                    "type": "agent_learning",
                    "content": text,
                    "metadata": {"raw": text, "k'; --": [text]},
                }
                for i, text in enumerate(HOSTILE)
            ]
        )
        for memory_id, text in zip(ids, HOSTILE, strict=True):
            entry = await store.retrieve(memory_id)
            assert entry is not None and entry.content == text
            assert entry.metadata == {"raw": text, "k'; --": [text]}
        for text in HOSTILE:
            for search in (store.search, store.hybrid_search):
                hits = await search(text, 3)
                assert hits and hits[0].content == text, (search.__name__, text)
        assert (await store.get_stats()).total == len(HOSTILE)


async def test_any_query_is_searched_as_text(edge_project: EdgeProject) -> None:
    queries = [
        *HOSTILE,
        '"',
        "-",
        "*",
        "(",
        ")",
        "NEAR(",
        "AND OR NOT",
        "  ",
        "",
        "x" * 10_000,
        " ".join(["NEAR("] * 200),
    ]
    async with CloudflareMemoryStore(
        edge_project.url, edge_project.token, embedder=KitEmbedder()
    ) as store:
        await store.store({"type": "agent_learning", "content": "fix AND retry: a-b (done)"})
        for query in queries:
            for call in (store.search, store.semantic_search_by_query, store.hybrid_search):
                assert isinstance(await call(query, 5), list)
        with pytest.raises(ValidationError) as info:
            await store.search("lone \ud800 surrogate")
        assert info.value.field == "query"
        assert (await store.get_stats()).total == 1


def test_a_2_mib_memory_is_413_and_stores_nothing(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    body: dict[str, Any] = {"type": "agent_learning", "content": "x" * (2 * MIB)}
    with http(edge_worker, edge_project.token) as client:
        for i, path in enumerate(("/api/memory", "/api/memory/batch")):
            payload = body if path == "/api/memory" else {"memories": [body]}
            request_id = f"mem-413-{edge_project.project}-{i}"
            answer = client.post(path, json=payload, headers={"X-Request-Id": request_id})
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"]["field"] == "body"
            audited(edge_worker, {request_id}, 413)
    assert count(edge_worker, edge_project.token) == 0


def test_malformed_and_invalid_bodies_name_the_field(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    cases: list[tuple[str, Any, int, str]] = [
        ("/api/memory", {"type": "agent_learning", "content": "x", "extra": 1}, 422, "extra"),
        ("/api/memory", {"type": "task_context", "content": "x"}, 422, "type"),
        ("/api/memory", {"type": "agent_learning", "content": ""}, 422, "content"),
        (
            "/api/memory",
            {"type": "agent_learning", "content": "x", "importance": 2},
            422,
            "importance",
        ),
        (
            "/api/memory",
            {"type": "agent_learning", "content": "x", "embedding": [0, 0]},
            422,
            "embedding",
        ),
        (
            "/api/memory",
            {"type": "agent_learning", "content": "x", "embedding": [3e38, 3e38]},
            422,
            "embedding",
        ),
        (
            "/api/memory",
            {"type": "agent_learning", "content": "x", "embedding": "not base64!"},
            422,
            "embedding",
        ),
        (
            "/api/memory/batch",
            {"memories": [{"type": "agent_learning"}]},
            422,
            "memories.0.content",
        ),
        ("/api/memory/compact", {"threshold": 0.5, "max_entries": 3}, 422, "threshold"),
        ("/api/memory/semantic", {"limit": 3}, 422, "embedding"),
    ]
    with http(edge_worker, edge_project.token) as client:
        for path, payload, status, field in cases:
            answer = client.post(path, json=payload)
            assert answer.status_code == status, (payload, answer.text)
            assert answer.json()["error"]["field"] == field, (payload, answer.text)
        bad = client.post(
            "/api/memory", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_json"
        cursor = client.get("/api/memory", params={"cursor": "c1.forged"})
        assert cursor.status_code == 422 and cursor.json()["error"]["field"] == "cursor"
    assert count(edge_worker, edge_project.token) == 0


def test_searches_are_reads_in_the_audit_log(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    """A search (a POST that only reads) leaves no audit row; a store and a refused search do."""
    tag = edge_project.project
    with http(edge_worker, edge_project.token) as client:
        stored = client.post(
            "/api/memory",
            json={"type": "agent_learning", "content": "audited write"},
            headers={"X-Request-Id": f"{tag}-store"},
        )
        assert stored.status_code == 201
        for path, body in (
            ("/api/memory/search", {"query": "audited"}),
            ("/api/memory/semantic", {"query": "audited"}),
            ("/api/memory/hybrid", {"query": "audited"}),
        ):
            answer = client.post(path, json=body, headers={"X-Request-Id": f"{tag}-{path[12:]}"})
            assert answer.status_code == 200, answer.text
            assert "Idempotent-Replayed" not in answer.headers
        refused = client.post(
            "/api/memory/search", json={"query": 3}, headers={"X-Request-Id": f"{tag}-bad"}
        )
        assert refused.status_code == 422
    audited(edge_worker, {f"{tag}-store"}, 201)
    logged = audited(edge_worker, {f"{tag}-bad"}, 422)
    assert not {f"{tag}-search", f"{tag}-semantic", f"{tag}-hybrid"} & logged
