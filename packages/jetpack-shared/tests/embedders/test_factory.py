from __future__ import annotations

from collections.abc import Sequence

import pytest

import jetpack.shared.embedders as embedders
from jetpack.shared.embedders import (
    Embedder,
    LocalEmbedder,
    OllamaEmbedder,
    OpenAIEmbedder,
    WorkersAIEmbedder,
    get_embedder,
)
from jetpack.shared.errors import ValidationError


class Constant:
    """A user's own embedder: no base class needed."""

    name = "test/constant"
    dimensions = 2

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]

    async def aclose(self) -> None:
        pass


def test_all_is_sorted_and_exported() -> None:
    def isort_key(name: str) -> tuple[int, str]:
        # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert embedders.__all__ == sorted(embedders.__all__, key=isort_key)
    for name in embedders.__all__:
        assert hasattr(embedders, name)


@pytest.mark.parametrize("spec", [None, "none", "", "  "])
def test_no_embedder(spec: str | None) -> None:
    assert get_embedder(spec) is None


@pytest.mark.parametrize("spec", ["default", "local", "LOCAL"])
async def test_local(spec: str) -> None:
    e = get_embedder(spec)
    assert isinstance(e, LocalEmbedder)
    assert e.dimensions == 384
    await e.aclose()


async def test_remote_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "a")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t")
    made = [
        get_embedder("openai"),
        get_embedder("openai:text-embedding-3-large"),
        get_embedder("ollama"),
        get_embedder("ollama:mxbai-embed-large"),
        get_embedder("workers-ai"),
    ]
    assert [type(e) for e in made] == [
        OpenAIEmbedder,
        OpenAIEmbedder,
        OllamaEmbedder,
        OllamaEmbedder,
        WorkersAIEmbedder,
    ]
    assert [e.dimensions for e in made if e is not None] == [1536, 3072, 768, 1024, 768]
    for e in made:
        assert e is not None
        await e.aclose()


def test_instance_passes_through() -> None:
    mine = Constant()
    assert isinstance(mine, Embedder)
    assert get_embedder(mine) is mine


def test_unknown_spec_names_the_field() -> None:
    with pytest.raises(ValidationError, match="unknown embedder 'bert'") as info:
        get_embedder("bert")
    assert info.value.field == "embedder"


def test_non_embedder_object_is_refused() -> None:
    with pytest.raises(ValidationError):
        get_embedder(42)  # type: ignore[arg-type]


async def test_every_embedder_meets_the_shared_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    import jetpack.shared

    assert Embedder is jetpack.shared.Embedder
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "a")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t")
    for spec in ("local", "openai", "ollama", "workers-ai"):
        e = get_embedder(spec)
        assert isinstance(e, jetpack.shared.Embedder), spec
        await e.aclose()
