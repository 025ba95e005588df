"""HTTP embedders against fake servers that speak each service's real wire format.

The real APIs cannot be reached from tests; these fakes check what a request
must carry (path, auth header, body) and answer the way the services do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from jetpack.shared.embedders import (
    Embedder,
    EmbedderError,
    OllamaEmbedder,
    OpenAIEmbedder,
    WorkersAIEmbedder,
)
from jetpack.shared.embedders._http import backoff_delay
from jetpack.shared.embedders._ollama import ollama_base_url
from jetpack.shared.errors import AuthError, UnavailableError, ValidationError

KEY = "sk-test-SECRET-0123456789"
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}


def fake_vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    return [((seed[i % 32] + i) % 251) / 251.0 - 0.5 for i in range(dims)]


class FakeServer:
    """Records requests; answers the statuses queued in ``failures`` first, then success."""

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.requests: list[httpx.Request] = []
        self.failures: list[int] = []

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            status = self.failures.pop(0)
            return self.error(status)
        return self.answer(request, json.loads(request.content))

    def error(self, status: int) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": f"fake {status}"}})

    def answer(self, request: httpx.Request, body: Any) -> httpx.Response:
        raise NotImplementedError


class FakeOpenAIEmbeddingsServer(FakeServer):
    """POST /v1/embeddings; answers rows out of order to prove they are re-sorted by index."""

    def answer(self, request: httpx.Request, body: Any) -> httpx.Response:
        assert request.url.path == "/v1/embeddings"
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"error": {"message": "Incorrect API key"}})
        dims = body.get("dimensions", self.dims)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t, dims)}
            for i, t in enumerate(body["input"])
        ]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": list(reversed(data)),
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            },
        )


class FakeOllamaServer(FakeServer):
    """POST /api/embed."""

    def answer(self, request: httpx.Request, body: Any) -> httpx.Response:
        assert request.url.path == "/api/embed"
        return httpx.Response(
            200,
            json={
                "model": body["model"],
                "embeddings": [fake_vector(t, self.dims) for t in body["input"]],
                "total_duration": 1,
            },
        )


class FakeWorkersAIServer(FakeServer):
    """POST /client/v4/accounts/{id}/ai/run/@cf/baai/bge-base-en-v1.5."""

    def error(self, status: int) -> httpx.Response:
        return httpx.Response(
            status,
            json={"success": False, "errors": [{"code": 3040, "message": f"fake {status}"}]},
        )

    def answer(self, request: httpx.Request, body: Any) -> httpx.Response:
        assert request.url.path == "/client/v4/accounts/acct123/ai/run/@cf/baai/bge-base-en-v1.5"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        vectors = [fake_vector(t, self.dims) for t in body["text"]]
        return httpx.Response(
            200,
            json={
                "result": {"shape": [len(vectors), self.dims], "data": vectors},
                "success": True,
                "errors": [],
                "messages": [],
            },
        )


def openai(server: FakeOpenAIEmbeddingsServer, **kw: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key=KEY, transport=server.transport(), **{**FAST, **kw})


async def test_openai_request_shape_and_order() -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    async with openai(server) as e:
        assert isinstance(e, Embedder)
        assert e.name == "openai/text-embedding-3-small"
        assert e.dimensions == 1536
        vectors = await e.embed(["alpha", "beta", "gamma"])
    assert vectors == [fake_vector(t, 1536) for t in ("alpha", "beta", "gamma")]
    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.openai.com/v1/embeddings"
    assert request.headers["content-type"] == "application/json"
    assert server.bodies[0] == {
        "model": "text-embedding-3-small",
        "input": ["alpha", "beta", "gamma"],
        "encoding_format": "float",
    }


async def test_openai_shortened_dimensions_are_requested() -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    async with openai(server, dimensions=256) as e:
        (v,) = await e.embed(["x"])
    assert len(v) == 256
    assert server.bodies[0]["dimensions"] == 256


async def test_openai_splits_large_inputs_into_batches() -> None:
    server = FakeOpenAIEmbeddingsServer(8)
    async with openai(server, dimensions=8) as e:
        vectors = await e.embed([f"t{i}" for i in range(1100)])
    assert [len(b["input"]) for b in server.bodies] == [512, 512, 76]
    assert vectors[1099] == fake_vector("t1099", 8)


async def test_retries_429_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    server.failures = [429, 503]
    with caplog.at_level(logging.WARNING):
        async with openai(server) as e:
            vectors = await e.embed(["hello"])
    assert vectors == [fake_vector("hello", 1536)]
    assert len(server.requests) == 3
    assert "429" in caplog.text
    assert KEY not in caplog.text


async def test_no_retry_on_400() -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    server.failures = [400]
    async with openai(server) as e:
        with pytest.raises(EmbedderError, match="400"):
            await e.embed(["hello"])
    assert len(server.requests) == 1


async def test_bad_key_is_auth_error_without_retry() -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    async with OpenAIEmbedder(api_key="wrong", transport=server.transport(), **FAST) as e:
        with pytest.raises(AuthError) as info:
            await e.embed(["hello"])
    assert len(server.requests) == 1
    assert "wrong" not in str(info.value)


async def test_gives_up_after_max_retries() -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    server.failures = [500] * 10
    async with openai(server, max_retries=2) as e:
        with pytest.raises(UnavailableError, match="3 attempts") as info:
            await e.embed(["hello"])
    assert info.value.retryable
    assert len(server.requests) == 3


async def test_key_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = FakeOpenAIEmbeddingsServer(1536)
    server.failures = [500] * 5
    e = OpenAIEmbedder(transport=server.transport(), max_retries=1, **FAST)
    assert KEY not in repr(e)
    assert KEY not in str(vars(e))
    with pytest.raises(UnavailableError) as info:
        await e.embed(["x"])
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.__cause__)
    await e.aclose()
    w = WorkersAIEmbedder(account_id="acct123", api_token=KEY)
    assert KEY not in repr(w)
    await w.aclose()


def test_missing_openai_key_is_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        OpenAIEmbedder()


async def test_blank_text_is_refused_naming_its_index() -> None:
    server = FakeOpenAIEmbeddingsServer(1536)
    async with openai(server) as e:
        with pytest.raises(ValidationError, match=r"texts\[1\]") as info:
            await e.embed(["fine", "  ", "fine too"])
    assert info.value.field == "texts[1]"
    assert isinstance(info.value, ValueError)
    assert server.requests == []


async def test_wrong_vector_count_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"model": "nomic-embed-text", "embeddings": [[0.0] * 768]})

    async with OllamaEmbedder(transport=httpx.MockTransport(handler)) as e:
        with pytest.raises(EmbedderError, match="1 vectors for 2 texts"):
            await e.embed(["a", "b"])


async def test_ollama_request_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11500")
    server = FakeOllamaServer(768)
    async with OllamaEmbedder(transport=server.transport(), **FAST) as e:
        assert e.name == "ollama/nomic-embed-text"
        assert e.dimensions == 768
        server.failures = [503]
        vectors = await e.embed(["one", "two"])
    assert vectors == [fake_vector("one", 768), fake_vector("two", 768)]
    assert str(server.requests[-1].url) == "http://127.0.0.1:11500/api/embed"
    assert server.bodies[-1] == {
        "model": "nomic-embed-text",
        "input": ["one", "two"],
        "truncate": True,
    }
    assert "authorization" not in server.requests[-1].headers


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://127.0.0.1:11434/"),
        ("localhost", "http://localhost:11434/"),
        ("http://gpu-box:8080", "http://gpu-box:8080/"),
        ("https://ollama.example", "https://ollama.example/"),
        ("[::1]:11434", "http://[::1]:11434/"),
    ],
)
def test_ollama_host_forms(host: str | None, url: str) -> None:
    assert ollama_base_url(host) == url


async def test_workers_ai_request_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct123")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", KEY)
    server = FakeWorkersAIServer(768)
    async with WorkersAIEmbedder(transport=server.transport(), **FAST) as e:
        assert e.name == "@cf/baai/bge-base-en-v1.5"
        assert e.dimensions == 768
        server.failures = [429]
        vectors = await e.embed([f"m{i}" for i in range(150)])
    assert len(vectors) == 150
    assert vectors[149] == fake_vector("m149", 768)
    assert [len(b["text"]) for b in server.bodies] == [100, 100, 50]  # the 429, its retry, the rest
    assert str(server.requests[-1].url) == (
        "https://api.cloudflare.com/client/v4/accounts/acct123/ai/run/@cf/baai/bge-base-en-v1.5"
    )


async def test_workers_ai_success_false_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"success": False, "errors": [{"code": 5006, "message": "bad input"}]}
        )

    async with WorkersAIEmbedder(
        account_id="acct123", api_token=KEY, transport=httpx.MockTransport(handler)
    ) as e:
        with pytest.raises(EmbedderError, match="bad input"):
            await e.embed(["x"])


async def test_workers_ai_400_is_not_retried() -> None:
    server = FakeWorkersAIServer(768)
    server.failures = [400]
    async with WorkersAIEmbedder(
        account_id="acct123", api_token=KEY, transport=server.transport(), **FAST
    ) as e:
        with pytest.raises(EmbedderError, match="fake 400"):
            await e.embed(["x"])
    assert len(server.requests) == 1


def test_backoff_is_jittered_exponential_and_capped() -> None:
    for attempt in range(8):
        for _ in range(50):
            assert 0 <= backoff_delay(attempt, base=0.5, cap=4.0) <= min(4.0, 0.5 * 2**attempt)
    assert backoff_delay(3, base=0.5, cap=4.0, retry_after=2.0) == 2.0
    assert backoff_delay(3, base=0.5, cap=4.0, retry_after=60.0) == 4.0


class _SlowOpenAIHandler(BaseHTTPRequestHandler):
    """A real socket server on 127.0.0.1: the first request stalls past the client timeout."""

    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        length = int(self.headers["content-length"])
        body = json.loads(self.rfile.read(length))
        if type(self).calls == 1:
            time.sleep(0.5)
        payload = json.dumps(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": fake_vector(t, 1536)}
                    for i, t in enumerate(body["input"])
                ],
                "model": body["model"],
            }
        ).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up on the stalled request

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    _SlowOpenAIHandler.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowOpenAIHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_timeout_is_retried_over_a_real_socket(slow_server: str) -> None:
    async with OpenAIEmbedder(api_key=KEY, base_url=slow_server, timeout=0.2, **FAST) as e:
        vectors = await e.embed(["over the wire"])
    assert vectors == [fake_vector("over the wire", 1536)]
    assert _SlowOpenAIHandler.calls == 2
