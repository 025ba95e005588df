"""EdgeClient: API check, error mapping, retries, uploads, and the token kept secret.

Against the real Worker where it can show the behaviour; a scripted HTTP server
(``FakeWorker``, a real server on loopback speaking the Worker's error
envelope) stands in where a failure must be injected: 5xx, 429 with
``Retry-After``, a wrong API version.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from jetpack.shared.edge import API_VERSION, free_port
from jetpack.shared.edge.client import MAX_BODY_BYTES, ApiVersionError, EdgeClient
from jetpack.shared.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

SECRET = "jp_SECRET-token-value-that-must-never-leak"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeWorker:
    """A scripted stand-in for the Worker: answers ``script`` in order, records requests."""

    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    api_version: int = API_VERSION
    url: str = ""

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        self.seen.append(Seen(handler.command, handler.path, dict(handler.headers), body))
        if handler.path == "/api/health":
            status, headers, payload = (
                200,
                {},
                {"status": "ok", "api_version": self.api_version, "modules": ["tasks"], "time": ""},
            )
        elif handler.path.startswith("/api/uploads/"):
            status, headers, payload = 200, {}, {"bytes": len(body)}
        else:
            status, headers, payload = (
                self.script.pop(0) if self.script else (200, {}, {"ok": True})
            )
        data = json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def fake() -> Iterator[FakeWorker]:
    worker = FakeWorker()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            worker.answer(self)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    worker.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield worker
    server.shutdown()
    server.server_close()


def error(status: int, code: str, message: str = "no", field: str | None = None) -> Any:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    return (status, {}, body)


async def test_open_checks_the_api_version_and_the_module(edge_worker: EdgeWorker) -> None:
    project = edge_worker.new_project()
    async with EdgeClient(edge_worker.url, project.token) as client:
        assert (await client.json("GET", "/api/tokens"))["tokens"]
    with pytest.raises(ApiVersionError, match="no 'nonexistent' module"):
        async with EdgeClient(edge_worker.url, project.token, module="nonexistent"):
            pass


async def test_a_local_worker_answers_uncompressed(edge_worker: EdgeWorker) -> None:
    """On loopback the client asks for identity: gzip would only cost CPU on both sides."""
    project = edge_worker.new_project()
    async with EdgeClient(edge_worker.url, project.token) as client:
        answer = await client.request("GET", "/api/tokens")
    assert answer.request.headers["Accept-Encoding"] == "identity"
    assert "Content-Encoding" not in answer.headers and answer.headers["Content-Length"]
    async with httpx.AsyncClient(base_url=edge_worker.url) as plain:  # a client asking for gzip
        assert (await plain.get("/api/health")).headers.get("Content-Encoding") == "gzip"


async def test_a_worker_of_another_api_version_is_refused_clearly(fake: FakeWorker) -> None:
    fake.api_version = API_VERSION + 1
    with pytest.raises(ApiVersionError, match=f"speaks API version {API_VERSION + 1}"):
        async with EdgeClient(fake.url, SECRET):
            pass


async def test_refusals_map_to_the_typed_errors(
    edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    async with EdgeClient(edge_worker.url, "jp_wrong") as client:
        with pytest.raises(AuthError, match="JETPACK_API_TOKEN"):
            await client.json("GET", "/api/tokens")
    async with EdgeClient(edge_worker.url, edge_project.token) as client:
        with pytest.raises(AuthError, match="admin token"):
            await client.json("GET", "/api/admin/tokens")
        with pytest.raises(NotFoundError) as missing:
            await client.json("DELETE", "/api/tokens/tok-nope", not_found=("token", "tok-nope"))
        assert missing.value.kind == "token" and missing.value.id == "tok-nope"
        with pytest.raises(ValidationError) as bad:
            await client.json("POST", "/api/tokens", json={"agent_id": "x", "colour": "red"})
        assert bad.value.field == "colour"


async def test_conflict_and_server_errors(fake: FakeWorker) -> None:
    fake.script = [error(409, "exists", "task 'a' already exists"), error(500, "internal")]
    async with EdgeClient(fake.url, SECRET, retries=0) as client:
        with pytest.raises(ConflictError, match="already exists"):
            await client.json("POST", "/api/x", json={})
        with pytest.raises(UnavailableError, match="500"):
            await client.json("GET", "/api/x")


async def test_retries_honour_retry_after_and_keep_the_idempotency_key(fake: FakeWorker) -> None:
    busy = (503, {"Retry-After": "1"}, {"error": {"code": "busy", "message": "later"}})
    fake.script = [busy, busy, (201, {}, {"done": True})]
    async with EdgeClient(fake.url, SECRET, retries=3, backoff_base=0.01) as client:
        started = time.monotonic()
        assert await client.json("POST", "/api/thing", json={"n": 1}) == {"done": True}
        elapsed = time.monotonic() - started
    posts = [s for s in fake.seen if s.method == "POST"]
    assert len(posts) == 3
    keys = {s.headers["Idempotency-Key"] for s in posts}
    assert len(keys) == 1 and len(keys.pop()) >= 16, "one key for every attempt of one call"
    assert elapsed >= 1.9, "Retry-After: 1 was not honoured"


async def test_in_progress_conflicts_are_retried(fake: FakeWorker) -> None:
    fake.script = [error(409, "in_progress"), (200, {}, {"ok": 1})]
    async with EdgeClient(fake.url, SECRET, backoff_base=0.01) as client:
        assert await client.json("POST", "/api/x", json={}) == {"ok": 1}


async def test_throttled_after_every_retry_is_unavailable(fake: FakeWorker) -> None:
    fake.script = [
        (429, {"Retry-After": "0"}, {"error": {"code": "rate_limited", "message": "m"}})
    ] * 3
    async with EdgeClient(fake.url, SECRET, retries=2, backoff_base=0.01) as client:
        with pytest.raises(UnavailableError, match="429") as info:
            await client.json("GET", "/api/x")
    assert info.value.retryable
    assert len([s for s in fake.seen if s.path == "/api/x"]) == 3


async def test_an_unreachable_worker_is_unavailable_after_retries() -> None:
    client = EdgeClient(
        f"http://127.0.0.1:{free_port()}", SECRET, retries=2, backoff_base=0.01, connect_timeout=2
    )
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="did not answer") as info:
        await client.open()
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert time.monotonic() - started < 20
    await client.aclose()


async def test_bodies_over_one_mib_go_in_parts(fake: FakeWorker) -> None:
    big = {"items": ["é" * 1000] * 300}  # 1.8 MB as ASCII-escaped JSON
    async with EdgeClient(fake.url, SECRET) as client:
        await client.json("POST", "/api/batch", json=big)
    parts = [s for s in fake.seen if s.method == "PUT"]
    final = next(s for s in fake.seen if s.path == "/api/batch")
    assert len(parts) == 2 and all(len(p.body) <= MAX_BODY_BYTES for p in parts)
    upload_id = parts[0].path.split("/")[3]
    assert final.headers["Jetpack-Upload"] == f"{upload_id}; parts=2" and final.body == b""
    assert json.loads(b"".join(p.body for p in parts)) == big


async def test_the_token_never_appears_in_reprs_logs_or_errors(
    fake: FakeWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script = [error(401, "unauthorized", "unknown or revoked token"), error(422, "invalid")]
    client = EdgeClient(fake.url, SECRET, retries=0)
    texts = [repr(client), str(client)]
    async with client:
        for _ in range(2):
            try:
                await client.json("POST", "/api/x", json={"a": 1})
            except Exception as exc:
                texts += [str(exc), repr(exc)]
    with pytest.raises(ValidationError) as info:
        EdgeClient("ftp://nowhere", SECRET)
    texts.append(str(info.value))
    assert all(SECRET not in text for text in texts)
    assert SECRET not in caplog.text
    assert any(s.headers.get("Authorization") == f"Bearer {SECRET}" for s in fake.seen)
