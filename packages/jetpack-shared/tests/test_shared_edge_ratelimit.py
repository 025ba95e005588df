"""A Worker built with a low rate limit and a short retention: 429 + Retry-After, then
recovery; the cron trigger deletes audit rows and idempotency keys past retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jetpack.shared.edge import BuildOptions
from jetpack.shared.testing.edge import EdgeWorker

LIMIT = 5
RETENTION_DAYS = 3 / 86_400  # three seconds
ALLOWED = "https://app.example"


@pytest.fixture(scope="module")
def strict_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeWorker]:
    root: Path = tmp_path_factory.mktemp("strict-worker")
    options = BuildOptions(
        rate_limit=LIMIT,
        rate_limit_period=10,
        retention_days=RETENTION_DAYS,
        cors_origins=(ALLOWED,),
    )
    worker = EdgeWorker.start(root, options)
    yield worker
    worker.stop()


def test_over_the_limit_is_429_with_retry_after_then_recovers(strict_worker: EdgeWorker) -> None:
    project = strict_worker.new_project()
    other = strict_worker.new_project(project.project)  # a second token of the same project
    headers = {"Authorization": f"Bearer {project.token}"}
    with httpx.Client(base_url=strict_worker.url, headers=headers, timeout=30) as http:
        answers = [
            http.post(
                "/api/tokens", json={"agent_id": f"a{i}"}, headers={"X-Request-Id": f"rl-{i}"}
            )
            for i in range(LIMIT + 3)
        ]
        statuses = [a.status_code for a in answers]
        assert statuses.count(201) <= LIMIT and 429 in statuses, statuses
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "10"
        minted = statuses.count(201)
        # Refused requests wrote nothing: one token per accepted request, plus the two projects'.
        status, listed = strict_worker.call("GET", f"/api/admin/tokens?project={project.project}")
        assert status == 200 and len(listed["tokens"]) == 2 + minted
        # The limit is per token: the project's other token still gets through.
        other_answer = http.get("/api/tokens", headers={"Authorization": f"Bearer {other.token}"})
        assert other_answer.status_code == 200
        deadline = time.monotonic() + 30
        while True:
            again = http.get("/api/tokens")
            if again.status_code == 200:
                break
            assert again.status_code == 429
            assert time.monotonic() < deadline, "the limit never recovered"
            time.sleep(1)
    status, audit = strict_worker.call("GET", f"/api/audit?project={project.project}&limit=1000")
    assert any(e["status"] == 429 and e["code"] == "rate_limited" for e in audit["entries"])


def test_the_cron_trigger_enforces_retention(strict_worker: EdgeWorker) -> None:
    project = strict_worker.new_project()
    headers = {"Authorization": f"Bearer {project.token}", "Idempotency-Key": "old-key-1"}
    with httpx.Client(base_url=strict_worker.url, timeout=30) as http:
        assert http.post("/api/tokens", json={"agent_id": "a"}, headers=headers).status_code == 201
        time.sleep(4)  # past retention
        fresh = http.get("/api/tokens", headers={"Authorization": "Bearer jp_nope"})
        assert fresh.status_code == 401
        time.sleep(0.5)
        status, before = strict_worker.call("GET", "/api/audit?limit=1000")
        assert status == 200
        assert any(e["project"] == project.project for e in before["entries"])
        trigger = http.get("/cdn-cgi/local/scheduled")  # what the daily cron does
        assert trigger.status_code == 200, trigger.text
        deadline = time.monotonic() + 30
        while True:
            status, after = strict_worker.call("GET", "/api/audit?limit=1000")
            assert status == 200
            if not any(e["project"] == project.project for e in after["entries"]):
                break
            assert time.monotonic() < deadline, "old audit rows were kept"
            time.sleep(1)
        assert any(e["request_id"] == fresh.headers["X-Request-Id"] for e in after["entries"])
        # The old idempotency key is gone: the same key runs again instead of replaying.
        again = http.post("/api/tokens", json={"agent_id": "a"}, headers=headers)
        assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers


def test_guessing_tokens_is_throttled_per_address(strict_worker: EdgeWorker) -> None:
    with httpx.Client(base_url=strict_worker.url, timeout=30) as http:
        statuses = [
            http.get("/api/tokens", headers={"Authorization": f"Bearer jp_guess-{i}"}).status_code
            for i in range(LIMIT + 3)
        ]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses


def test_a_configured_origin_gets_cors_and_others_do_not(strict_worker: EdgeWorker) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{strict_worker.url}/api/tokens",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )

    allowed = preflight(ALLOWED)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    foreign = preflight("https://evil.example")
    assert foreign.status_code == 403 and "Access-Control-Allow-Origin" not in foreign.headers
